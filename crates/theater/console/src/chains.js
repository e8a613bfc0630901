// The chains page: every stored chain, each a link to its entries (also a chain that cannot be
// read: its row shows why, and its page's Verify tells more).

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get } from './api.js';
import { chainHref, graphHref, num, bytes, ErrorLine } from './util.js';

const isCount = (n) => typeof n === 'number' && Number.isFinite(n);

/** One chain; one that cannot be read (damaged, say) has `error` instead of `len`/`start`. */
function ChainRow({ c }) {
  const readable = isCount(c.len) && isCount(c.start);
  const failed = typeof c.error === 'string' || !readable;
  return html`<tr data-chain=${c.name} class=${failed ? 'failed' : undefined}>
    <td class="name"><a href=${chainHref(c.name)}>${c.name}</a></td>
    ${failed
      ? html`<td colspan="2" class="chain-error" title="the chain page's Verify tells more">
          ${typeof c.error === 'string' ? c.error : 'cannot read this chain'}</td>`
      : html`<td class="num">${num(c.len - c.start)}</td>
          <td class="mono num">${c.len > c.start ? `${c.start}–${c.len - 1}` : '–'}</td>`}
    <td class="num">${bytes(c.bytes)}</td>
    <td><a class="muted" href=${graphHref([c.name])}>graph</a></td>
  </tr>`;
}

export function ChainsPage() {
  const [chains, setChains] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let gone = false;
    get('chains')
      .then((c) => !gone && setChains(c))
      .catch((e) => !gone && setError(e));
    return () => {
      gone = true;
    };
  }, []);

  return html`<section class="page">
    <h1>Chains</h1>
    <${ErrorLine} error=${error} />
    ${chains === null && !error ? html`<p class="muted">Loading…</p>` : null}
    <table id="chains" class="grid">
      <thead><tr><th>name</th><th>entries</th><th>seqs</th><th>size</th><th></th></tr></thead>
      <tbody>
        ${(chains || []).map((c) => html`<${ChainRow} key=${c.name} c=${c} />`)}
      </tbody>
    </table>
    ${chains && chains.length === 0 ? html`<p class="muted">No chains.</p>` : null}
  </section>`;
}
