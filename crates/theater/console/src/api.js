// The console's JSON API (see ../API.md). Every request sends `x-theater-console: 1` and the
// session (`x-theater-session`, kept in this tab's sessionStorage), never cookies; a failure
// throws an ApiError carrying the server's `{"error": ...}` text.

export const API = '/console/api/';
const SESSION_KEY = 'theater-console-session';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

// The session: per origin (so per port) and per tab; a reload keeps it. Should storage be
// unavailable (some privacy settings throw on any access), it lives in memory until a reload.
let memorySession = null;
const validSession = (s) => typeof s === 'string' && /^[\x21-\x7e]{1,512}$/.test(s);

export function getSession() {
  try {
    const s = sessionStorage.getItem(SESSION_KEY);
    return validSession(s) ? s : null;
  } catch {
    return memorySession;
  }
}

function setSession(s) {
  memorySession = s;
  try {
    sessionStorage.setItem(SESSION_KEY, s);
  } catch {
    // in memory only
  }
}

export function clearSession() {
  memorySession = null;
  try {
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // nothing stored
  }
}

let onUnauthorized = null;

/** Called with the error when a request gets 401 after login (the session has ended). */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

async function failure(res) {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // the body is lost: the status says enough
  }
  let message = null;
  try {
    const data = JSON.parse(text);
    if (data && typeof data.error === 'string') message = data.error;
  } catch {
    // not JSON
  }
  if (message === null) message = `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`;
  return new ApiError(res.status, message);
}

/**
 * Sends a request with the console's headers and resolves to the Response when it is OK;
 * otherwise throws an ApiError with the server's text. `auth: false` leaves the session out
 * (login). A 401 to a request that carried the session removes that session from storage and
 * tells the unauthorized handler (unless `quiet401`).
 */
export async function send(path, { method = 'GET', body, signal, accept = 'application/json', auth = true, quiet401 = false } = {}) {
  const url = path.startsWith('/') ? path : API + path;
  const headers = { 'x-theater-console': '1', accept };
  const session = auth ? getSession() : null;
  if (session) headers['x-theater-session'] = session;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', signal };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server (${e && e.message ? e.message : e})`);
  }
  if (res.ok) return res;
  const err = await failure(res);
  if (res.status === 401 && auth) {
    // Only the session this request used: a new login in the meantime stays.
    if (session && getSession() === session) clearSession();
    if (!quiet401 && onUnauthorized) onUnauthorized(err);
  }
  throw err;
}

/**
 * `path` is relative to /console/api/ unless it starts with '/'. `body` (any JSON value) makes
 * it a JSON request. Resolves to the parsed answer (null for 204 or an empty body).
 */
export async function request(path, opts = {}) {
  const res = await send(path, opts);
  const text = res.status === 204 ? '' : await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, `the server's answer is not JSON: ${text.slice(0, 300)}`);
  }
}

export const get = (path, opts) => request(path, opts);
export const post = (path, body, opts) => request(path, { ...opts, method: 'POST', body });

/** Logs in with a one-time code and stores the session the server hands out. */
export async function login(code) {
  const answer = await post('/console/login', { code }, { auth: false });
  if (!answer || !validSession(answer.session)) throw new ApiError(0, 'the server answered the login without a session');
  setSession(answer.session);
  return answer;
}

/**
 * Ends the session on the server (`POST /console/logout`), then forgets it here whatever the
 * answer. Resolves to null when the server confirmed it, else to the error (the session then
 * ends by itself when it expires; a 401 means it had ended already).
 */
export async function logout() {
  let problem = null;
  if (getSession()) {
    try {
      await send('/console/logout', { method: 'POST', quiet401: true });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) problem = e;
    }
  }
  clearSession();
  return problem;
}

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send the session header).
 * Calls `onOpen()` once the server has answered 200, then `onEvent(data)` for each event (its
 * `data:` lines joined by newlines; comments and events named other than `message` skipped).
 * Resolves when the stream ends; rejects with an ApiError (or AbortError on `signal`).
 */
export async function readEvents(path, { signal, onOpen, onEvent }) {
  const res = await send(path, { signal, accept: 'text/event-stream' });
  const type = res.headers.get('content-type') || '';
  if (!type.startsWith('text/event-stream')) {
    if (res.body) res.body.cancel().catch(() => {});
    throw new ApiError(res.status, `the server's answer is not an event stream (${type || 'no content-type'})`);
  }
  if (!res.body) throw new ApiError(res.status, 'the event stream has no body');
  if (onOpen) onOpen();
  const parser = eventParser(onEvent);
  const decoder = new TextDecoder('utf-8');
  const reader = res.body.getReader();
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (e && e.name === 'AbortError') throw e;
        throw new ApiError(0, `the event stream broke off (${e && e.message ? e.message : e})`);
      }
      if (chunk.done) break;
      parser.push(decoder.decode(chunk.value, { stream: true }));
    }
    // An event not ended by a blank line is dropped, as EventSource does.
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The text/event-stream line format: `push(text)` as it arrives, `onEvent(data)` per event. */
export function eventParser(onEvent) {
  let buf = '';
  let data = [];
  let name = '';
  let first = true;
  const line = (l) => {
    if (l === '') {
      if (data.length && (name === '' || name === 'message')) onEvent(data.join('\n'));
      data = [];
      name = '';
      return;
    }
    if (l.startsWith(':')) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') name = value;
    // `id` and `retry` do not matter here; unknown fields are ignored.
  };
  return {
    push(text) {
      buf += text;
      if (first && buf.length) {
        if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
        first = false;
      }
      let start = 0;
      for (;;) {
        const cr = buf.indexOf('\r', start);
        const lf = buf.indexOf('\n', start);
        if (cr < 0 && lf < 0) break;
        let end;
        let next;
        if (lf >= 0 && (cr < 0 || lf < cr)) {
          end = lf;
          next = lf + 1;
        } else if (cr === buf.length - 1) {
          break; // a CR at the end: wait to see whether an LF follows
        } else {
          end = cr;
          next = buf[cr + 1] === '\n' ? cr + 2 : cr + 1;
        }
        line(buf.slice(start, end));
        start = next;
      }
      buf = buf.slice(start);
    },
  };
}

/** The URL piece for a chain or actor name. */
export const seg = (name) => encodeURIComponent(name);

/** A query string from an object, leaving out null, undefined, '' and false. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '' || v === false) continue;
    q.set(k, v === true ? '1' : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
