// One chain: its entries, newest first, one page at a time. The server pages and searches
// (with a budget per request); the page never holds more than one page of entries.

import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, post, seg, query } from './api.js';
import { entryHref, graphHref, short, ErrorLine, RefLink, errorText } from './util.js';

const PAGE = 50;
/** Requests made for one click when a search's budget runs out before the page is full. */
const MAX_REQUESTS = 4;
const KINDS = ['init', 'input', 'read', 'failed', 'upgrade'];
const NO_FILTERS = { q: '', kind: '', failed: false, from: '', to: '' };

/** Where each chain's page was (filters and page), to come back to it from an entry. */
const remembered = new Map();

const filtered = (f) => f.q !== '' || f.kind !== '' || f.failed || f.from !== '' || f.to !== '';

function checkFilters(f) {
  for (const k of ['from', 'to']) {
    if (f[k] !== '' && !/^\d+$/.test(f[k])) return `"${k}" must be a seq (a whole number)`;
  }
  if (f.from !== '' && f.to !== '' && Number(f.from) > Number(f.to)) return '"from" is after "to"';
  return null;
}

function Status({ view, loading, applied }) {
  if (!view) return loading ? 'loading…' : '';
  const n = view.entries.length;
  const f = filtered(applied);
  const parts = [];
  if (n > 0) {
    const seqs = view.entries.map((e) => e.seq);
    const lo = Math.min(...seqs);
    const hi = Math.max(...seqs);
    const range = lo === hi ? `${lo}` : `${lo}–${hi}`;
    parts.push(f ? `showing ${n} matching entr${n === 1 ? 'y' : 'ies'}, seq ${range}` : `showing ${n} of entries ${range}`);
  } else {
    parts.push(`no ${f ? 'matching ' : ''}entries${view.complete ? '' : ' yet'}`);
  }
  parts.push(view.len > view.start ? `the chain holds ${view.start}–${view.len - 1}` : 'the chain is empty');
  // Plain numbers (no thousands separators): easier to read back in tests.
  let top = view.before ?? view.len;
  let bottom = view.next ?? view.start;
  if (applied.to !== '') top = Math.min(top, Number(applied.to) + 1);
  if (applied.from !== '') bottom = Math.max(bottom, Number(applied.from));
  let searched = `searched ${view.scanned} entries`;
  if (top > bottom) searched += ` (seq ${bottom}–${top - 1})`;
  if (f && view.total !== view.scanned) searched += `, ${view.total} in this search`;
  parts.push(searched);
  let text = parts.join('; ');
  if (loading) text += '; searching…';
  else if (!view.complete && view.next !== null && n < PAGE) text += `; the search goes on below seq ${view.next}: "older" resumes it`;
  else if (view.next === null) text += '; reached the start of the chain';
  return text;
}

function EntryRow({ chain, e }) {
  return html`<tr data-seq=${e.seq} data-damaged=${e.damaged ? 'true' : undefined} class=${e.failed || e.damaged ? 'failed' : undefined}>
    <td class="mono num seq"><a href=${entryHref(chain, e.seq)}>${e.seq}</a></td>
    <td class="kind"><span class=${`kind kind-${e.kind}`}>${e.kind}</span>${e.failed ? html` <span class="badge-failed">failed</span>` : null}</td>
    <td class="summary" title=${e.summary}>${e.summary}</td>
    <td class="refs">${(e.refs || []).map((r) => html`<${RefLink} key=${`${r.chain}/${r.seq}`} r=${r} /> `)}</td>
    <td class="mono hash" title=${e.hash}>${short(e.hash)}</td>
  </tr>`;
}

function Verify({ chain }) {
  const [state, setState] = useState(null);
  const run = async () => {
    setState({ busy: true });
    try {
      setState({ result: await post(`chains/${seg(chain)}/verify`) });
    } catch (e) {
      setState({ error: e });
    }
  };
  let out = null;
  const r = state && state.result;
  if (state && state.busy) out = html`<span class="muted">verifying…</span>`;
  else if (state && state.error) out = html`<span class="error">${errorText(state.error)}</span>`;
  else if (r && r.ok) out = html`verified: ${r.entries} entries${r.head !== null && r.head !== undefined ? `, head ${r.head}` : ''}`;
  else if (r) {
    out = html`bad at seq ${r.seq}: ${r.problem}${r.offset !== null && r.offset !== undefined ? ` (byte ${r.offset})` : ''}`;
  }
  return html`<span class="verify">
    <button id="verify" type="button" onClick=${run} disabled=${state && state.busy}>Verify</button>
    <span id="verify-result" data-ok=${r ? String(!!r.ok) : undefined} data-seq=${r && !r.ok ? r.seq : undefined}
      class=${r ? (r.ok ? 'ok' : 'error') : undefined} aria-live="polite">${out}</span>
  </span>`;
}

export function ChainPage({ chain }) {
  const saved = remembered.get(chain);
  const [filters, setFilters] = useState(saved ? saved.filters : NO_FILTERS);
  const [applied, setApplied] = useState(saved ? saved.applied : NO_FILTERS);
  const [view, setView] = useState(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState(null);
  const [kinds, setKinds] = useState(KINDS);
  const run = useRef({ token: 0, abort: null });

  /** Loads the page of `f` that starts below `before` (undefined: the newest). */
  const load = async (f, before, total = 0) => {
    const r0 = run.current;
    if (r0.abort) r0.abort.abort();
    const token = ++r0.token;
    const abort = new AbortController();
    r0.abort = abort;
    remembered.set(chain, { filters: f, applied: f, before });
    setApplied(f);
    setLoading(true);
    setError(null);

    let entries = [];
    let scanned = 0;
    let cursor = before;
    try {
      for (let i = 0; i < MAX_REQUESTS; i++) {
        const params = { before: cursor, limit: PAGE - entries.length, kind: f.kind, failed: f.failed, from: f.from, to: f.to, q: f.q };
        const r = await get(`chains/${seg(chain)}/entries${query(params)}`, { signal: abort.signal });
        if (token !== run.current.token) return;
        entries = entries.concat(r.entries || []);
        scanned += r.scanned || 0;
        total += r.scanned || 0;
        const seen = (r.entries || []).map((e) => e.kind).filter((k) => k);
        setKinds((ks) => (seen.every((k) => ks.includes(k)) ? ks : [...new Set([...ks, ...seen])].sort()));
        setView({ entries, next: r.next ?? null, complete: !!r.complete, scanned, total, before, start: r.start, len: r.len });
        // A full page, the end, or a page the server finished: done. Otherwise the budget ran out
        // on a search: resume it from `next`, a page's worth at a time, a few times per click.
        if (r.complete || r.next === null || r.next === undefined || entries.length >= PAGE) break;
        cursor = r.next;
      }
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (token === run.current.token) setError(e);
    } finally {
      if (token === run.current.token) setLoading(false);
    }
  };

  useEffect(() => {
    load(applied, saved ? saved.before : undefined);
    return () => {
      run.current.token++;
      if (run.current.abort) run.current.abort.abort();
    };
  }, []);

  const onSearch = (ev) => {
    ev.preventDefault();
    const problem = checkFilters(filters);
    if (problem) {
      setError(new Error(problem));
      return;
    }
    load({ ...filters }, undefined);
  };
  const set = (k) => (ev) => {
    const t = ev.currentTarget;
    setFilters((f) => ({ ...f, [k]: t.type === 'checkbox' ? t.checked : t.value }));
  };
  const older = () => view && view.next !== null && load(applied, view.next, view.total);
  const newest = () => load(applied, undefined);
  const clear = () => {
    setFilters(NO_FILTERS);
    load(NO_FILTERS, undefined);
  };

  return html`<section class="page" id="chain" data-chain=${chain}>
    <h1>
      <span class="muted">chain</span> ${chain}
      <a class="small" href=${graphHref([chain])}>graph</a>
      <${Verify} chain=${chain} />
    </h1>
    <form class="filters" onSubmit=${onSearch}>
      <label>text <input id="q" type="search" value=${filters.q} onInput=${set('q')} placeholder="in input, output, error" spellcheck="false" /></label>
      <label>kind <select id="kind" value=${filters.kind} onChange=${set('kind')}>
        <option value="">any</option>
        ${kinds.map((k) => html`<option key=${k} value=${k}>${k}</option>`)}
        ${filters.kind && !kinds.includes(filters.kind) ? html`<option value=${filters.kind}>${filters.kind}</option>` : null}
      </select></label>
      <label><input id="failed" type="checkbox" checked=${filters.failed} onChange=${set('failed')} /> failed only</label>
      <label>seq <input id="from" type="number" min="0" step="1" value=${filters.from} onInput=${set('from')} placeholder="from" class="seq-input" /></label>
      <label>– <input id="to" type="number" min="0" step="1" value=${filters.to} onInput=${set('to')} placeholder="to" class="seq-input" /></label>
      <button id="search" type="submit">Search</button>
      ${filtered(applied) || filtered(filters) ? html`<button type="button" class="link" onClick=${clear}>clear</button>` : null}
    </form>
    <${ErrorLine} error=${error} />
    <p id="status" class="status" aria-live="polite"><${Status} view=${view} loading=${loading} applied=${applied} /></p>
    <table id="entries" class="grid entries">
      <thead><tr><th>seq</th><th>kind</th><th>summary</th><th>refs</th><th>hash</th></tr></thead>
      <tbody>${(view ? view.entries : []).map((e) => html`<${EntryRow} key=${e.seq} chain=${chain} e=${e} />`)}</tbody>
    </table>
    <div class="pager">
      <button id="newest" type="button" onClick=${newest} disabled=${loading && !view}>Newest</button>
      <button id="older" type="button" onClick=${older} hidden=${!view || view.next === null} disabled=${loading}>
        ${view && !view.complete && view.entries.length < PAGE ? 'Older (search on)' : 'Older'}
      </button>
    </div>
  </section>`;
}
