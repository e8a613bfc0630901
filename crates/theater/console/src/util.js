// Routes (by hash), links and formatting shared by the pages.

import { html } from 'htm/preact';

/**
 * The route in a hash: `#/actors`, `#/chains`, `#/chain/NAME`, `#/entry/NAME/SEQ`,
 * `#/graph?chains=a,b`. Anything else is `{ page: 'default' }` (or `unknown`).
 */
export function parseHash(hash) {
  let h = hash.startsWith('#') ? hash.slice(1) : hash;
  let qs = '';
  const qi = h.indexOf('?');
  if (qi >= 0) {
    qs = h.slice(qi + 1);
    h = h.slice(0, qi);
  }
  const params = new URLSearchParams(qs);
  let parts;
  try {
    parts = h.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    return { page: 'unknown', hash };
  }
  if (parts.length === 0) return { page: 'default' };
  const [page, ...rest] = parts;
  if (page === 'actors' && rest.length === 0) return { page };
  if (page === 'chains' && rest.length === 0) return { page };
  if (page === 'chain' && rest.length === 1) return { page, chain: rest[0] };
  if (page === 'entry' && rest.length === 2 && /^\d+$/.test(rest[1])) {
    return { page, chain: rest[0], seq: Number(rest[1]) };
  }
  if (page === 'graph' && rest.length === 0) {
    const chains = params.has('chains')
      ? params.get('chains').split(',').map((s) => s.trim()).filter((s) => s !== '')
      : null;
    return { page, chains, limit: params.get('limit') };
  }
  return { page: 'unknown', hash };
}

const enc = encodeURIComponent;
export const chainHref = (chain) => `#/chain/${enc(chain)}`;
export const entryHref = (chain, seq) => `#/entry/${enc(chain)}/${seq}`;
export function graphHref(chains, limit) {
  const q = new URLSearchParams();
  if (chains) q.set('chains', chains.join(','));
  if (limit) q.set('limit', String(limit));
  const s = q.toString().replace(/%2C/g, ',');
  return `#/graph${s ? `?${s}` : ''}`;
}

/** JSON, indented, for a <pre>. */
export function pretty(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** A short hash for a table cell; the full one goes into `title`. */
export const short = (hash) => (typeof hash === 'string' && hash.length > 12 ? hash.slice(0, 12) : hash ?? '');

export function bytes(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export const num = (n) => (typeof n === 'number' ? n.toLocaleString('en') : n ?? '');

export function rate(n) {
  if (typeof n !== 'number') return n ?? '';
  if (n === 0) return '0';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export const errorText = (e) => (e && e.message ? e.message : String(e));

/** An error line: the server's text, as text. */
export function ErrorLine({ error, id }) {
  if (!error) return null;
  return html`<p class="error" id=${id} role="alert">${errorText(error)}</p>`;
}

/** A link to a referenced entry: `a.ref[data-chain][data-seq]`. */
export function RefLink({ r }) {
  return html`<a class="ref" href=${entryHref(r.chain, r.seq)} data-chain=${r.chain} data-seq=${r.seq}
    title=${r.hash ? `${r.chain} #${r.seq} ${r.hash}` : `${r.chain} #${r.seq}`}>${r.chain}#${r.seq}</a>`;
}
