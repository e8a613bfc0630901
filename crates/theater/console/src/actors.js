// The actors page (live hosts only): a table kept current over Server-Sent Events, and a form
// that sends a message or a request to an actor.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { API, get, post, seg } from './api.js';
import { chainHref, entryHref, short, num, rate, bytes, pretty, errorText, ErrorLine } from './util.js';

function useLiveActors() {
  const [actors, setActors] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState('connecting');

  useEffect(() => {
    let es = null;
    let retry = null;
    let closed = false;

    // A GET first: it carries the server's error text, which an EventSource cannot.
    const connect = () => {
      get('actors')
        .then((list) => {
          if (closed) return;
          setActors(list);
          setError(null);
          open();
        })
        .catch((e) => {
          if (closed) return;
          setError(e);
          setLive('stopped');
          if (e.status !== 401) retry = setTimeout(connect, 5000);
        });
    };
    const open = () => {
      es = new EventSource(`${API}actors/live`);
      es.onopen = () => setLive('live');
      es.onmessage = (ev) => {
        try {
          setActors(JSON.parse(ev.data));
          setLive('live');
        } catch (e) {
          setError(new Error(`a bad event from the server: ${errorText(e)}`));
        }
      };
      es.onerror = () => {
        if (closed) return;
        if (es.readyState === EventSource.CLOSED) {
          // The server refused (or ended) the stream: try again in a while, via the GET.
          es.close();
          es = null;
          setLive('stopped');
          retry = setTimeout(connect, 5000);
        } else {
          setLive('reconnecting');
        }
      };
    };
    connect();
    return () => {
      closed = true;
      clearTimeout(retry);
      if (es) es.close();
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
    <td data-col="hash" class="mono" title=${a.hash || ''}>${short(a.hash)}</td>
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
    <h1>Actors <span class=${`live live-${live}`} id="live-state">${live}</span></h1>
    <${ErrorLine} error=${error} />
    ${actors === null && !error ? html`<p class="muted">Loading…</p>` : null}
    <table id="actors" class="grid">
      <thead><tr>
        <th>name</th><th>status</th><th>seq</th><th>head</th><th>inputs</th><th>inputs/s</th>
        <th>failures</th><th>restarts</th><th>mailbox</th><th>chain</th>
      </tr></thead>
      <tbody>${(actors || []).map((a) => html`<${ActorRow} key=${a.name} a=${a} />`)}</tbody>
    </table>
    ${actors && actors.length === 0 ? html`<p class="muted">No actors are running.</p>` : null}
    <${SendForm} actors=${actors} />
  </section>`;
}
