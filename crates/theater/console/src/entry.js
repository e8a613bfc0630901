// One entry in full: input, output, host calls, references, and on demand the state after it
// (replayed by the server) with its diff against the state before.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get, seg } from './api.js';
import { chainHref, entryHref, pretty, ErrorLine, RefLink, errorText } from './util.js';

/** An input or output: `{json, bytes?}`, or any other value as JSON. */
function Payload({ value }) {
  if (value === undefined || value === null) return html`<p class="muted">none</p>`;
  if (typeof value === 'object' && !Array.isArray(value) && ('json' in value || 'bytes' in value)) {
    const rest = Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'json' && k !== 'bytes'));
    return html`
      ${'json' in value ? html`<pre class="json">${pretty(value.json)}</pre>` : null}
      ${'bytes' in value && value.bytes !== null ? html`<div class="bytes"><span class="muted">bytes</span><pre>${typeof value.bytes === 'string' ? value.bytes : pretty(value.bytes)}</pre></div>` : null}
      ${Object.keys(rest).length ? html`<pre class="json">${pretty(rest)}</pre>` : null}`;
  }
  return html`<pre class="json">${pretty(value)}</pre>`;
}

function Field({ label, value, mono = true }) {
  if (value === undefined || value === null) return null;
  return html`<dt>${label}</dt><dd class=${mono ? 'mono' : undefined}>${typeof value === 'object' ? html`<pre>${pretty(value)}</pre>` : String(value)}</dd>`;
}

function Replay({ chain, seq }) {
  const [state, setState] = useState(null);
  const run = async () => {
    setState({ busy: true });
    try {
      setState({ result: await get(`chains/${seg(chain)}/state/${seq}`) });
    } catch (e) {
      setState({ error: e });
    }
  };
  const r = state && state.result;
  return html`<section class="replay">
    <h2>State after this entry
      <button id="replay" type="button" onClick=${run} disabled=${state && state.busy}>${r ? 'Replay again' : 'Replay'}</button>
      ${state && state.busy ? html`<span class="muted"> replaying…</span>` : null}
    </h2>
    ${state && state.error ? html`<p class="error" id="replay-error">${errorText(state.error)}</p>` : null}
    ${r &&
    html`<p class="muted">replayed ${r.replayed} entr${r.replayed === 1 ? 'y' : 'ies'}${r.from !== undefined && r.from !== null ? ` from seq ${r.from}` : ''}</p>
      <h3>Changes</h3>
      <div id="entry-diff">
        ${(r.diff || []).length === 0
          ? html`<p class="muted">no change</p>`
          : html`<table class="grid diff">
              <thead><tr><th>path</th><th>before</th><th>after</th></tr></thead>
              <tbody>
                ${r.diff.map(
                  (d) => html`<tr key=${d.path} data-path=${d.path}>
                    <td class="mono path">${d.path === '' ? '(whole state)' : d.path}</td>
                    <td class="before"><pre>${d.before === null || d.before === undefined ? '–' : pretty(d.before)}</pre></td>
                    <td class="after"><pre>${d.after === null || d.after === undefined ? '–' : pretty(d.after)}</pre></td>
                  </tr>`,
                )}
              </tbody>
            </table>`}
      </div>
      <h3>State</h3>
      <pre id="entry-state" class="json">${pretty(r.state)}</pre>`}
  </section>`;
}

export function EntryPage({ chain, seq }) {
  const [entry, setEntry] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let gone = false;
    get(`chains/${seg(chain)}/entries/${seq}`)
      .then((e) => !gone && setEntry(e))
      .catch((e) => !gone && setError(e));
    return () => {
      gone = true;
    };
  }, []);

  const e = entry;
  const nav = (id, to, label) =>
    to === null || to === undefined || !e
      ? html`<a id=${id} class="disabled" aria-disabled="true">${label}</a>`
      : html`<a id=${id} href=${entryHref(chain, to)}>${label}</a>`;

  return html`<section class="page" id="entry" data-chain=${chain} data-seq=${seq}>
    <h1>
      <a href=${chainHref(chain)}>${chain}</a> <span class="mono">#${seq}</span>
      ${e && html` <span class=${`kind kind-${e.kind}`}>${e.kind}</span>`}
      ${e && e.error !== undefined && e.error !== null ? html` <span class="badge-failed">failed</span>` : null}
    </h1>
    <nav class="prevnext">${nav('prev', e && e.prev, '← prev')} ${nav('next', e && e.next, 'next →')}</nav>
    <${ErrorLine} error=${error} />
    ${!e && !error ? html`<p class="muted">Loading…</p>` : null}
    ${e &&
    html`<dl class="fields">
        <${Field} label="hash" value=${e.hash} />
        <${Field} label="parent" value=${e.parent} />
        <${Field} label="state hash" value=${e.state_hash} />
        <${Field} label="output digest" value=${e.output_digest} />
        <${Field} label="code" value=${e.code} />
        <${Field} label="params" value=${e.params} />
      </dl>
      ${e.error !== undefined && e.error !== null
        ? html`<section id="entry-error" class="failed-box"><h2>Error</h2><pre>${typeof e.error === 'string' ? e.error : pretty(e.error)}</pre></section>`
        : null}
      <section id="entry-input"><h2>Input</h2><${Payload} value=${e.input} /></section>
      <section id="entry-output"><h2>Output</h2><${Payload} value=${e.output} /></section>
      <section id="entry-host-calls">
        <h2>Host calls <span class="muted">(${(e.host_calls || []).length})</span></h2>
        ${(e.host_calls || []).length === 0
          ? html`<p class="muted">none</p>`
          : html`<table class="grid calls">
              <thead><tr><th>#</th><th>name</th><th>request</th><th>result</th></tr></thead>
              <tbody>
                ${e.host_calls.map(
                  (c, i) => html`<tr key=${i}>
                    <td class="mono num">${i}</td>
                    <td class="mono">${c.name}</td>
                    <td><pre>${pretty(c.request)}</pre></td>
                    <td><pre>${pretty(c.result)}</pre></td>
                  </tr>`,
                )}
              </tbody>
            </table>`}
      </section>
      <section id="entry-refs">
        <h2>References</h2>
        ${(e.refs || []).length === 0
          ? html`<p class="muted">none</p>`
          : html`<ul>${e.refs.map((r) => html`<li key=${`${r.chain}/${r.seq}`}><${RefLink} r=${r} /> <span class="mono muted" title=${r.hash}>${r.hash}</span></li>`)}</ul>`}
      </section>
      <${Replay} chain=${chain} seq=${seq} />`}
  </section>`;
}
