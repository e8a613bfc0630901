// The chains page: every stored chain, each a link to its entries.

import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get } from './api.js';
import { chainHref, graphHref, num, bytes, ErrorLine } from './util.js';

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
        ${(chains || []).map(
          (c) => html`<tr key=${c.name} data-chain=${c.name}>
            <td class="name"><a href=${chainHref(c.name)}>${c.name}</a></td>
            <td class="num">${num(c.len - c.start)}</td>
            <td class="mono num">${c.len > c.start ? `${c.start}–${c.len - 1}` : '–'}</td>
            <td class="num">${bytes(c.bytes)}</td>
            <td><a class="muted" href=${graphHref([c.name])}>graph</a></td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${chains && chains.length === 0 ? html`<p class="muted">No chains.</p>` : null}
  </section>`;
}
