// The message graph: chains as lanes, entries as nodes, links (cause to effect) as edges,
// drawn by Cytoscape.js over the layout computed in layout.js.

import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import cytoscape from 'cytoscape';
import { get } from './api.js';
import { entryHref, ErrorLine } from './util.js';
import { layoutGraph, messagePath, LANE_WIDTH } from './layout.js';

const DEFAULT_LIMIT = 200;
const MAX_LIMIT = 2000; // the server's limit per chain: 1..=2000
/** Chains drawn at first when the route names none: all if this many or fewer, else the first. */
const DEFAULT_CHAINS = 8;
const NODE_WIDTH = 168;
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

// Fill and border per entry kind; other kinds (an input's type, say) get one from PALETTE.
const KIND_COLORS = {
  init: ['#dbeafe', '#3b82f6'],
  input: ['#dcfce7', '#22a04b'],
  read: ['#f1f5f9', '#94a3b8'],
  upgrade: ['#ede9fe', '#7c3aed'],
  request: ['#fef3c7', '#d97706'],
  message: ['#cffafe', '#0891b2'],
};
const PALETTE = [
  ['#fae8ff', '#c026d3'],
  ['#ffedd5', '#ea580c'],
  ['#e0e7ff', '#4f46e5'],
  ['#ccfbf1', '#0d9488'],
  ['#fce7f3', '#db2777'],
  ['#ecfccb', '#65a30d'],
];
const FAILED = ['#dc2626', '#991b1b'];

function kindColors(kind) {
  if (KIND_COLORS[kind]) return KIND_COLORS[kind];
  let h = 0;
  for (const ch of String(kind)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

const shortKind = (k) => {
  const s = String(k ?? '');
  return s.length > 14 ? `${s.slice(0, 13)}…` : s;
};

const STYLE = [
  {
    selector: 'node',
    style: {
      shape: 'round-rectangle',
      width: NODE_WIDTH,
      height: 30,
      label: 'data(label)',
      'font-family': FONT,
      'font-size': 12,
      color: '#111827',
      'text-valign': 'center',
      'text-halign': 'center',
      'text-wrap': 'ellipsis',
      'text-max-width': NODE_WIDTH - 12,
      'min-zoomed-font-size': 7,
      'background-color': 'data(fill)',
      'border-width': 1,
      'border-color': 'data(stroke)',
      'transition-property': 'opacity',
      'transition-duration': 120,
    },
  },
  { selector: 'node.failed', style: { color: '#ffffff', 'font-weight': 'bold' } },
  {
    selector: 'edge.order',
    style: { width: 1, 'line-color': '#d5dae1', 'curve-style': 'straight', events: 'no' },
  },
  {
    selector: 'edge.link',
    style: {
      width: 1.5,
      'line-color': '#64748b',
      'target-arrow-color': '#64748b',
      'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9,
      'curve-style': 'bezier',
    },
  },
  { selector: '.dim', style: { opacity: 0.18 } },
  { selector: 'node.hl', style: { 'border-width': 3, 'border-color': '#2563eb' } },
  { selector: 'edge.hl', style: { width: 3, 'line-color': '#2563eb', 'target-arrow-color': '#2563eb' } },
  { selector: 'node.origin', style: { 'border-width': 4, 'border-color': '#1d4ed8', 'underlay-color': '#93c5fd', 'underlay-padding': 6, 'underlay-opacity': 0.6 } },
];

/** The view at first: everything if it fits readably, else the top rows (where lanes start). */
function initialView(cy) {
  const w = cy.width();
  const h = cy.height();
  const bb = cy.elements().boundingBox();
  if (bb.w === 0 && bb.h === 0) return;
  const fitZoom = Math.min((w - 60) / bb.w, (h - 60) / bb.h);
  if (fitZoom >= 0.55) {
    cy.fit(undefined, 30);
    if (cy.zoom() > 1.2) cy.zoom({ level: 1.2, renderedPosition: { x: w / 2, y: h / 2 } });
    cy.center();
    return;
  }
  const z = Math.max(cy.minZoom(), Math.min(0.85, (w - 40) / bb.w));
  cy.zoom(z);
  const x = bb.w * z < w ? (w - bb.w * z) / 2 - bb.x1 * z : 20 - bb.x1 * z;
  cy.pan({ x, y: 24 - bb.y1 * z });
}

/** Lane names above the canvas, kept over their lanes as the view pans and zooms. */
function placeLanes(cy, box, lanes) {
  const pan = cy.pan();
  const zoom = cy.zoom();
  const spans = box.children;
  for (let i = 0; i < spans.length && i < lanes.length; i++) {
    const s = spans[i];
    const x = pan.x + lanes[i].x * zoom;
    s.style.left = `${x}px`;
    s.style.maxWidth = `${Math.max(24, LANE_WIDTH * zoom - 6)}px`;
    s.style.visibility = x < -LANE_WIDTH || x > cy.width() + LANE_WIDTH ? 'hidden' : 'visible';
  }
}

function Selected({ layout, sel }) {
  if (!sel || !layout) return html`<p class="muted">Click an entry to follow its messages across the lanes.</p>`;
  const byId = new Map(layout.nodes.map((n) => [n.id, n]));
  const origin = byId.get(sel.id);
  if (!origin) return null;
  const path = [...sel.path].map((id) => byId.get(id)).filter(Boolean).sort((a, b) => a.rank - b.rank || a.lane - b.lane);
  const item = (n) => html`<a class="path-entry" href=${entryHref(n.chain, n.seq)} data-chain=${n.chain} data-seq=${n.seq}>${n.chain}#${n.seq}</a>`;
  return html`<div>
    <p class="origin">${item(origin)} <span class=${`kind kind-${origin.kind}`}>${origin.kind}</span>
      ${origin.failed ? html` <span class="badge-failed">failed</span>` : null} <span class="summary">${origin.summary}</span></p>
    <h3>Message path <span class="muted">(${path.length} entr${path.length === 1 ? 'y' : 'ies'})</span></h3>
    <ol class="path">
      ${path.map((n) => html`<li key=${n.id} class=${[n.id === sel.id ? 'current' : '', n.failed ? 'failed' : ''].join(' ')}>
        ${item(n)} <span class=${`kind kind-${n.kind}`}>${n.kind}</span> <span class="summary">${n.summary}</span></li>`)}
    </ol>
  </div>`;
}

export function GraphPage({ route }) {
  const [names, setNames] = useState(null);
  const [chosen, setChosen] = useState(route.chains);
  const initialLimit = /^\d+$/.test(route.limit || '') ? Math.min(MAX_LIMIT, Math.max(1, Number(route.limit))) : DEFAULT_LIMIT;
  const [limit, setLimit] = useState(initialLimit);
  const [limitText, setLimitText] = useState(String(initialLimit));
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const [layout, setLayout] = useState(null);
  const [sel, setSel] = useState(null);
  const [hover, setHover] = useState(null);
  const container = useRef(null);
  const lanesBox = useRef(null);
  const limitInput = useRef(null);
  const cyRef = useRef(null);
  const token = useRef(0);

  // The chains to choose from (by name); by default all of them, or the first few of many.
  useEffect(() => {
    get('chains')
      .then((cs) => {
        const all = [...new Set(cs.map((c) => c.name))].sort();
        setNames(all);
        setChosen((c) => c ?? all.slice(0, DEFAULT_CHAINS));
      })
      .catch((e) => {
        setError(e);
        setNames([]);
      });
    return () => {
      token.current++;
      if (cyRef.current) cyRef.current.destroy();
      cyRef.current = null;
    };
  }, []);

  // Fetch and draw (a moment after the last change of the choice).
  useEffect(() => {
    if (chosen === null) return;
    const t = ++token.current;
    const timer = setTimeout(async () => {
      if (chosen.length === 0) {
        draw({ chains: [], links: [] });
        setLoading(false);
        return;
      }
      setLoading(true);
      setError(null);
      try {
        const g = await get(`graph?chains=${chosen.map(encodeURIComponent).join(',')}&limit=${limit}`);
        if (t !== token.current) return;
        draw(g);
      } catch (e) {
        if (t === token.current) setError(e);
      } finally {
        if (t === token.current) setLoading(false);
      }
    }, 200);
    return () => clearTimeout(timer);
  }, [chosen, limit]);

  function draw(g) {
    const lay = layoutGraph(g);
    if (cyRef.current) cyRef.current.destroy();
    cyRef.current = null;
    const el = container.current;
    if (!el) return;
    const elements = [];
    for (const n of lay.nodes) {
      const [fill, stroke] = n.failed ? FAILED : kindColors(n.kind);
      elements.push({
        group: 'nodes',
        data: { id: n.id, label: `${n.seq} ${shortKind(n.kind)}`, fill, stroke },
        position: { x: n.x, y: n.y },
        classes: n.failed ? 'entry failed' : 'entry',
      });
    }
    for (const e of lay.order) elements.push({ group: 'edges', data: e, classes: 'order' });
    for (const e of lay.links) elements.push({ group: 'edges', data: e, classes: 'link' });
    const big = lay.nodes.length > 600;
    const cy = cytoscape({
      container: el,
      elements,
      style: STYLE,
      layout: { name: 'preset' },
      minZoom: 0.05,
      maxZoom: 3,
      autoungrabify: true,
      autounselectify: true,
      boxSelectionEnabled: false,
      hideEdgesOnViewport: big,
      textureOnViewport: big,
    });
    cyRef.current = cy;

    const box = lanesBox.current;
    if (box) {
      box.replaceChildren(
        ...lay.lanes.map((l) => {
          const s = document.createElement('span');
          s.className = l.error === null ? 'lane-name' : 'lane-name lane-error';
          s.dataset.chain = l.name;
          if (l.error === null) {
            s.textContent = l.name;
            s.title = l.name;
          } else {
            // The chain could not be read: its error in the header, no nodes below.
            s.dataset.error = l.error;
            s.textContent = `${l.name}: ${l.error}`;
            s.title = `${l.name} could not be read: ${l.error}`;
          }
          return s;
        }),
      );
      cy.on('viewport resize', () => placeLanes(cy, box, lay.lanes));
    }
    const clear = () => {
      cy.elements().removeClass('dim hl origin');
      setSel(null);
    };
    cy.on('tap', (ev) => {
      if (ev.target === cy) clear();
    });
    cy.on('tap', 'node.entry', (ev) => {
      const id = ev.target.id();
      const path = messagePath(lay, id);
      cy.batch(() => {
        cy.elements().removeClass('hl origin').addClass('dim');
        cy.nodes().filter((n) => path.has(n.id())).removeClass('dim').addClass('hl');
        cy.edges('.link').filter((e) => path.has(e.source().id()) && path.has(e.target().id())).removeClass('dim').addClass('hl');
        ev.target.addClass('origin');
      });
      setSel({ id, path });
    });
    cy.on('mouseover', 'node.entry', (ev) => {
      const n = lay.nodes[Number(ev.target.id().slice(1))];
      setHover(n || null);
      el.classList.add('pointing');
    });
    cy.on('mouseout', 'node.entry', () => {
      setHover(null);
      el.classList.remove('pointing');
    });

    initialView(cy);
    if (box) placeLanes(cy, box, lay.lanes);
    el.setAttribute('data-nodes', String(lay.nodes.length));
    el.setAttribute('data-edges', String(lay.links.length));
    el.setAttribute('data-order-edges', String(lay.order.length));
    setLayout(lay);
    setSel(null);
    setHover(null);
  }

  const toggle = (name) => (ev) => {
    const on = ev.currentTarget.checked;
    setChosen((c) => {
      const set = new Set(c || []);
      if (on) set.add(name);
      else set.delete(name);
      // Keep the order of the list of chains (the lanes' order).
      return (names || []).filter((n) => set.has(n)).concat([...set].filter((n) => !(names || []).includes(n)));
    });
  };
  // Read from the element: an input and a change event may come before the next render.
  const applyLimit = () => {
    const n = Number(limitInput.current ? limitInput.current.value : limitText);
    if (!Number.isInteger(n) || n < 1) {
      setError(new Error(`the limit must be a whole number from 1 to ${MAX_LIMIT}`));
      return;
    }
    setError(null);
    const v = Math.min(n, MAX_LIMIT);
    setLimitText(String(v));
    setLimit(v);
  };
  const onSubmit = (ev) => {
    ev.preventDefault();
    applyLimit();
  };
  const fit = () => cyRef.current && cyRef.current.fit(undefined, 30);
  const all = names || [];
  const extra = (chosen || []).filter((n) => !all.includes(n));
  const shown = (chosen || []).filter((n) => all.includes(n)).length;
  const laneErrors = layout ? layout.lanes.filter((l) => l.error !== null) : [];

  return html`<section class="page graph-page">
    <h1>Message graph</h1>
    <form class="graph-controls" onSubmit=${onSubmit}>
      <fieldset class="graph-chains">
        <legend>chains</legend>
        ${names === null ? html`<span class="muted">loading…</span>` : null}
        ${[...all, ...extra].map(
          (n) => html`<label key=${n}><input type="checkbox" class="graph-chain" value=${n}
            checked=${(chosen || []).includes(n)} onChange=${toggle(n)} /> ${n}</label>`,
        )}
      </fieldset>
      <label>last <input id="graph-limit" ref=${limitInput} type="number" min="1" max=${MAX_LIMIT} step="1" value=${limitText}
        onInput=${(e) => setLimitText(e.currentTarget.value)} onChange=${applyLimit} /> entries per chain</label>
      <button id="graph-draw" type="submit">Draw</button>
      <button id="graph-fit" type="button" onClick=${fit}>Fit</button>
      <span class="muted">${loading
        ? 'loading…'
        : layout
          ? `${layout.nodes.length} entries, ${layout.links.length} links${laneErrors.length ? `; ${laneErrors.length} chain${laneErrors.length === 1 ? '' : 's'} could not be read` : ''}`
          : ''}</span>
    </form>
    ${names && names.length > 0 && shown < names.length
      ? html`<p id="graph-note" class="graph-note">showing ${shown} of ${names.length} chains: choose others above</p>`
      : null}
    <${ErrorLine} error=${error} />
    ${laneErrors.length > 0
      ? html`<ul id="graph-errors" class="graph-errors">
          ${laneErrors.map((l) => html`<li key=${l.name} data-chain=${l.name} class="error"><strong>${l.name}</strong> could not be read: ${l.error}</li>`)}
        </ul>`
      : null}
    <div class="graph-layout">
      <div class="graph-wrap">
        <div id="graph-lanes" class="graph-lanes" ref=${lanesBox}></div>
        <div id="graph" ref=${container}></div>
        <p id="graph-hover" class="graph-hover">${hover
          ? html`<span class="mono">${hover.chain}#${hover.seq}</span> ${hover.kind}${hover.failed ? ' (failed)' : ''}: ${hover.summary}`
          : ''}</p>
      </div>
      <aside id="graph-selected"><${Selected} layout=${layout} sel=${sel} /></aside>
    </div>
  </section>`;
}
