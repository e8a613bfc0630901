// The message graph's layout, computed here (Cytoscape draws it with the `preset` layout):
// one lane (column) per chain, and rows by rank: the longest path (from the top) in the DAG
// whose edges run from each entry to the next one in its chain and along each link (cause to
// effect). So an entry is always below the entry before it in its chain and below every entry
// it refers to, and as high as that allows: each lane's oldest shown entry starts at the top
// unless a link pushes it down. (Entries carry no time: lanes line up by causality only.)

export const LANE_WIDTH = 220;
export const ROW_HEIGHT = 54;

/**
 * `graph` is the answer of `GET graph`. Returns
 * `{ lanes: [{name, x, error}], nodes: [{id, chain, seq, kind, failed, summary, lane, rank, x, y}],
 *    order: [{id, source, target}], links: [{id, source, target}], byKey: Map, maxRank }`.
 * Links whose ends are not both in the graph are left out. Should links ever form a cycle,
 * the layout breaks it (taking entries in chain order) rather than failing.
 */
export function layoutGraph(graph) {
  const chains = (graph && graph.chains) || [];
  // A chain the server could not read comes as `{name, error}`: a lane with its error, no nodes.
  const lanes = chains.map((c, i) => ({
    name: c.name,
    x: i * LANE_WIDTH,
    error: typeof c.error === 'string' ? c.error : null,
  }));
  const nodes = [];
  const byKey = new Map(); // `${chain}\u0000${seq}` -> node
  const laneNodes = [];
  chains.forEach((c, lane) => {
    const sorted = lanes[lane].error !== null ? [] : [...(c.entries || [])].sort((a, b) => a.seq - b.seq);
    const mine = [];
    for (const e of sorted) {
      const key = nodeKey(c.name, e.seq);
      if (byKey.has(key)) continue; // a chain listed twice, or a repeated seq: draw it once
      const n = {
        id: `n${nodes.length}`,
        chain: c.name,
        seq: e.seq,
        kind: e.kind,
        failed: !!e.failed,
        summary: e.summary,
        lane,
        rank: 0,
        x: lane * LANE_WIDTH,
        y: 0,
        index: nodes.length,
      };
      nodes.push(n);
      mine.push(n);
      byKey.set(key, n);
    }
    laneNodes.push(mine);
  });

  const succ = nodes.map(() => []);
  const indeg = nodes.map(() => 0);
  const order = [];
  for (const mine of laneNodes) {
    for (let i = 1; i < mine.length; i++) {
      succ[mine[i - 1].index].push(mine[i].index);
      indeg[mine[i].index]++;
      order.push({ id: `o${order.length}`, source: mine[i - 1].id, target: mine[i].id });
    }
  }
  const links = [];
  const seen = new Set();
  for (const l of (graph && graph.links) || []) {
    if (!l || !l.from || !l.to) continue;
    const a = byKey.get(nodeKey(l.from.chain, l.from.seq));
    const b = byKey.get(nodeKey(l.to.chain, l.to.seq));
    if (!a || !b || a === b) continue;
    const k = `${a.index}>${b.index}`;
    if (seen.has(k)) continue;
    seen.add(k);
    succ[a.index].push(b.index);
    indeg[b.index]++;
    links.push({ id: `l${links.length}`, source: a.id, target: b.id });
  }

  // Longest path by Kahn's algorithm; a cycle (which links should never make) is broken by
  // taking the lowest pending entry of some lane, whose chain predecessor is already placed.
  const done = nodes.map(() => false);
  const queue = [];
  nodes.forEach((n) => indeg[n.index] === 0 && queue.push(n.index));
  const lanePos = laneNodes.map(() => 0);
  let placed = 0;
  while (placed < nodes.length) {
    if (queue.length === 0) {
      let pick = null;
      laneNodes.forEach((mine, lane) => {
        while (lanePos[lane] < mine.length && done[mine[lanePos[lane]].index]) lanePos[lane]++;
        const n = mine[lanePos[lane]];
        if (n && (pick === null || n.rank < pick.rank)) pick = n;
      });
      queue.push(pick.index);
    }
    const v = queue.pop();
    if (done[v]) continue;
    done[v] = true;
    placed++;
    const r = nodes[v].rank + 1;
    for (const s of succ[v]) {
      if (done[s]) continue;
      if (nodes[s].rank < r) nodes[s].rank = r;
      if (--indeg[s] === 0) queue.push(s);
    }
  }
  let maxRank = 0;
  for (const n of nodes) {
    n.y = n.rank * ROW_HEIGHT;
    if (n.rank > maxRank) maxRank = n.rank;
  }
  return { lanes, nodes, order, links, byKey, maxRank };
}

export const nodeKey = (chain, seq) => `${chain}\u0000${seq}`;

/**
 * The message path of a node: it and every node reachable from it over links, either way
 * (chain order does not count). Returns a Set of node ids.
 */
export function messagePath(layout, id) {
  const adj = new Map();
  for (const l of layout.links) {
    if (!adj.has(l.source)) adj.set(l.source, []);
    if (!adj.has(l.target)) adj.set(l.target, []);
    adj.get(l.source).push(l.target);
    adj.get(l.target).push(l.source);
  }
  const found = new Set([id]);
  const stack = [id];
  while (stack.length) {
    for (const m of adj.get(stack.pop()) || []) {
      if (!found.has(m)) {
        found.add(m);
        stack.push(m);
      }
    }
  }
  return found;
}
