// The actors page (live hosts only): a table kept current over Server-Sent Events (read with
// fetch), and a form that sends a message or a request to an actor.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { post, readEvents, seg } from './api.js';
import { chainHref, entryHref, num, rate, bytes, pretty, errorText, ErrorLine } from './util.js';

/** Reconnection waits: the first, and the longest (doubling in between). */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 5000;

/**
 * The actors, kept current from `GET actors/live` read with fetch (an EventSource cannot send
 * the session header). `live` is 'connecting', 'live', 'reconnecting' or 'stopped' (after a
 * 401, when the session has ended: no retries then).
 */
function useLiveActors() {
  const [actors, setActors] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState('connecting');

  useEffect(() => {
    const abort = new AbortController();
    let retry = null;
    let wait = RETRY_FIRST_MS;

    const connect = async () => {
      let problem = null;
      try {
        await readEvents('actors/live', {
          signal: abort.signal,
          onOpen: () => setLive('live'),
          onEvent: (data) => {
            let list;
            try {
              list = JSON.parse(data);
            } catch (e) {
              setError(new Error(`a bad event from the server: ${errorText(e)}`));
              return;
            }
            if (!Array.isArray(list)) {
              setError(new Error('a bad event from the server: not a list of actors'));
              return;
            }
            wait = RETRY_FIRST_MS;
            setActors(list);
            setError(null);
            setLive('live');
          },
        });
      } catch (e) {
        if (abort.signal.aborted || (e && e.name === 'AbortError')) return;
        problem = e;
      }
      if (abort.signal.aborted) return;
      if (problem && problem.status === 401) {
        // The session has ended: the page shows #login-error; stop here.
        setError(problem);
        setLive('stopped');
        return;
      }
      // The stream ended or broke: try again in a while.
      if (problem) setError(problem);
      setLive('reconnecting');
      retry = setTimeout(connect, wait);
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    };
    connect();
    return () => {
      abort.abort();
      clearTimeout(retry);
    };
  }, []);
  return { actors, error, live };
}

function ActorRow({ a }) {
  const cls = [a.failures > 0 ? 'has-failures' : '', `status-${String(a.status).toLowerCase()}`].join(' ');
  return html`<tr data-actor=${a.name} class=${cls}>
    <td class="name"><a href=${chainHref(a.name)}>${a.name}</a></td>
    <td data-col="status" class="status">${a.status}</td>
    <td data-col="seq" class="mono num">
      ${a.seq === null || a.seq === undefined ? '–' : html`<a href=${entryHref(a.name, a.seq)}>${a.seq}</a>`}
    </td>
    <td data-col="inputs" class="num">${num(a.inputs)}</td>
    <td data-col="inputs_per_s" class="num">${rate(a.inputs_per_s)}</td>
    <td data-col="failures" class=${a.failures > 0 ? 'num failed' : 'num'}>${num(a.failures)}</td>
    <td data-col="restarts" class="num">${num(a.restarts)}</td>
    <td data-col="mailbox" class="num">${num(a.mailbox)}</td>
    <td data-col="chain_bytes" class="num">${bytes(a.chain_bytes)}</td>
  </tr>`;
}

function SendForm({ actors }) {
  const [to, setTo] = useState('');
  const [body, setBody] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);

  const send = async (kind) => {
    let value;
    try {
      value = JSON.parse(body);
    } catch (e) {
      setResult({ error: new Error(`the body is not JSON: ${errorText(e)}`) });
      return;
    }
    if (!to.trim()) {
      setResult({ error: new Error('name an actor to send to') });
      return;
    }
    const name = to.trim();
    setBusy(true);
    setResult(null);
    try {
      const answer = await post(`actors/${seg(name)}/send`, { [kind]: value });
      setResult({ name, answer });
    } catch (e) {
      setResult({ error: e });
    } finally {
      setBusy(false);
    }
  };
  const onSubmit = (ev) => {
    ev.preventDefault();
    send('request');
  };

  let out = null;
  if (busy) out = html`<span class="muted">sending…</span>`;
  else if (result && result.error) out = html`<span class="error">${errorText(result.error)}</span>`;
  else if (result && result.answer) {
    const a = result.answer;
    out = html`<span data-ok="true">
      ${'reply' in a ? 'reply' : 'sent'}
      ${a.seq !== undefined && a.seq !== null && html` · recorded as <a href=${entryHref(result.name, a.seq)}>${result.name}#${a.seq}</a>`}
      ${'reply' in a && html`<pre>${pretty(a.reply)}</pre>`}
    </span>`;
  }

  return html`<form class="send" onSubmit=${onSubmit}>
    <h2>Send</h2>
    <div class="row">
      <label>to <input id="send-to" list="actor-names" value=${to} onInput=${(e) => setTo(e.currentTarget.value)}
        placeholder="actor" autocomplete="off" spellcheck="false" /></label>
      <datalist id="actor-names">${(actors || []).map((a) => html`<option key=${a.name} value=${a.name} />`)}</datalist>
    </div>
    <label class="block">JSON body
      <textarea id="send-body" rows="4" spellcheck="false" value=${body} onInput=${(e) => setBody(e.currentTarget.value)}
        placeholder='{"type": "increment"}'></textarea>
    </label>
    <div class="row">
      <button id="send" type="submit" disabled=${busy} title="send as a request and wait for the reply">Request</button>
      <button id="send-message" type="button" disabled=${busy} onClick=${() => send('message')}
        title="send as a one-way message">Message</button>
    </div>
    <div id="send-result" aria-live="polite">${out}</div>
  </form>`;
}

export function ActorsPage() {
  const { actors, error, live } = useLiveActors();
  return html`<section class="page">
    <h1>Actors <span class=${`live live-${live}`} id="live-state" data-state=${live}
      title=${live === 'live' ? 'connected: updates as the actors change' : 'not connected: the list may be out of date'}>${live}</span></h1>
    <${ErrorLine} error=${error} />
    ${actors === null && !error ? html`<p class="muted">Loading…</p>` : null}
    <table id="actors" class="grid">
      <thead><tr>
        <th>name</th><th>status</th><th>seq</th><th>inputs</th><th>inputs/s</th>
        <th>failures</th><th>restarts</th><th>mailbox</th><th>chain</th>
      </tr></thead>
      <tbody>${(actors || []).map((a) => html`<${ActorRow} key=${a.name} a=${a} />`)}</tbody>
    </table>
    ${actors && actors.length === 0 ? html`<p class="muted">No actors are running.</p>` : null}
    <${SendForm} actors=${actors} />
  </section>`;
}
