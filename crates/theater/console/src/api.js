// The console's JSON API (see ../API.md). Every request sends `x-theater-console: 1` and the
// session cookie; a failure throws an ApiError carrying the server's `{"error": ...}` text.

export const API = '/console/api/';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let onUnauthorized = null;

/** Called with the error when a request gets 401 after login (the session has ended). */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

/**
 * `path` is relative to /console/api/ unless it starts with '/'. `body` (any JSON value) makes
 * it a JSON request. Resolves to the parsed answer (null for 204 or an empty body).
 */
export async function request(path, { method = 'GET', body, signal, quiet401 = false } = {}) {
  const url = path.startsWith('/') ? path : API + path;
  const headers = { 'x-theater-console': '1', accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
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
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  let parsed = false;
  if (text) {
    try {
      data = JSON.parse(text);
      parsed = true;
    } catch {
      // not JSON: reported below
    }
  }
  if (!res.ok) {
    let message;
    if (parsed && data && typeof data.error === 'string') message = data.error;
    else message = `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`;
    const err = new ApiError(res.status, message);
    if (res.status === 401 && !quiet401 && onUnauthorized) onUnauthorized(err);
    throw err;
  }
  if (text && !parsed) throw new ApiError(res.status, `the server's answer is not JSON: ${text.slice(0, 300)}`);
  return data;
}

export const get = (path, opts) => request(path, opts);
export const post = (path, body, opts) => request(path, { ...opts, method: 'POST', body });

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
