/**
 * Draws the training statechart from the chart JSON that the server exports from the machine's
 * own definition (/api/chart): ELK's layered layout, rendered as SVG. Root handlers of
 * `policy.step` (they apply in every state) are drawn through one decision diamond, each edge
 * labelled with its priority and guard; handlers that stay in place are self-loops or notes.
 * Marks each rank's state with a badge and highlights the firing transition. Owns only the SVG.
 */
const NS = 'http://www.w3.org/2000/svg';
const LEAF_W = 210;
const LEAF_H = 66;
const SUB_W = 150;
const SUB_H = 58;
const BADGE = 17; // badge pitch
const BADGES_MAX = 20;

function el(name, attrs = {}, parent) {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (parent) parent.appendChild(n);
  return n;
}

const textWidth = (s) => Math.ceil(s.length * 6.2) + 6;

/** 'policy.late-stage.steady' -> 'late-stage.steady' (the path ranks report). */
export function pathOf(rootId, id) {
  return id.startsWith(rootId + '.') ? id.slice(rootId.length + 1) : id;
}

export function stateColor(path) {
  const top = String(path).split('.')[0];
  return `var(--${top}, #999)`;
}

export class Diagram {
  constructor(container) {
    this.container = container;
    this.nodes = new Map(); // path -> { g, x, y, w, h, badges }
    this.edges = []; // { g, source, target }
    this.root = null;
    this.fireTimer = null;
  }

  /** Lays the chart out and draws it. */
  async draw(chart) {
    const root = chart.states.find((s) => s.parent === null);
    this.root = root.id;
    const byId = new Map(chart.states.map((s) => [s.id, s]));
    const elkNode = (s) => {
      if (s.children.length) {
        const kids = s.children.map((c) => elkNode(byId.get(c)));
        const edges = [];
        if (s.initial) {
          kids.unshift({ id: `${s.id}#init`, width: 12, height: 12 });
          edges.push({ id: `${s.id}#init>`, sources: [`${s.id}#init`], targets: [s.initial] });
        }
        return {
          id: s.id,
          layoutOptions: { 'elk.padding': '[top=72,left=12,bottom=12,right=12]', 'elk.direction': 'RIGHT' },
          children: kids,
          edges,
        };
      }
      const depth = s.id.split('.').length - 1;
      return { id: s.id, width: depth > 1 ? SUB_W : LEAF_W, height: depth > 1 ? SUB_H : LEAF_H };
    };
    const children = root.children.map((c) => elkNode(byId.get(c)));
    const edges = [];
    if (root.initial) {
      children.push({ id: '#init', width: 14, height: 14 });
      edges.push({ id: '#init>', sources: ['#init'], targets: [root.initial] });
    }
    const rootT = chart.transitions.filter((t) => t.source === root.id);
    const stays = [];
    if (rootT.length) {
      children.push({ id: '#decide', width: 40, height: 40 });
      for (const t of rootT) {
        const label = `${t.order + 1}. ${t.guard ?? 'else'}`;
        if (!t.targets.length) {
          stays.push(`${label}: stay`);
          continue;
        }
        edges.push({ id: `#decide>${t.targets[0]}>${t.order}`, sources: ['#decide'], targets: [t.targets[0]], labels: [{ text: label, width: textWidth(label), height: 13 }] });
      }
    }
    for (const t of chart.transitions.filter((x) => x.source !== root.id)) {
      const target = t.targets[0] ?? t.source;
      const label = `${t.event}${t.guard ? ` [${t.guard}]` : ''}${t.targets.length ? '' : ' stay'}`;
      edges.push({ id: `${t.source}>${target}>${t.order}`, sources: [t.source], targets: [target], labels: [{ text: label, width: textWidth(label), height: 13 }] });
    }
    const graph = {
      id: root.id,
      layoutOptions: {
        'elk.algorithm': 'layered',
        'elk.direction': 'RIGHT',
        'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
        'elk.layered.spacing.nodeNodeBetweenLayers': '46',
        'elk.spacing.nodeNode': '22',
        'elk.spacing.edgeLabel': '3',
        'elk.edgeLabels.inline': 'false',
        'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
        'elk.padding': '[top=14,left=14,bottom=14,right=14]',
      },
      children,
      edges,
    };
    // eslint-disable-next-line no-undef
    const laid = await new ELK().layout(graph);
    this.render(laid, byId, stays);
  }

  render(laid, byId, stays) {
    this.container.textContent = '';
    const w = Math.ceil(laid.width);
    const h = Math.ceil(laid.height) + 4;
    const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img' }, this.container);
    svg.style.maxWidth = `${w}px`;
    const defs = el('defs', {}, svg);
    const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, defs);
    el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8b96a0' }, marker);
    const nodeLayer = el('g', {}, svg);
    const edgeLayer = el('g', {}, svg);
    const abs = new Map([[laid.id, { x: 0, y: 0 }]]);
    const allEdges = [];
    const walk = (n, ox, oy) => {
      for (const e of n.edges ?? []) allEdges.push({ e, owner: n.id });
      for (const c of n.children ?? []) {
        const x = ox + c.x;
        const y = oy + c.y;
        abs.set(c.id, { x, y });
        this.drawNode(nodeLayer, c, x, y, byId);
        walk(c, x, y);
      }
    };
    this.nodes.clear();
    this.edges = [];
    walk(laid, 0, 0);
    for (const { e, owner } of allEdges) {
      // ELK reports edge coordinates relative to the edge's container (elkjs >= 0.9 names it)
      const o = abs.get(e.container ?? owner) ?? { x: 0, y: 0 };
      const g = el('g', { class: 'edge', 'data-source': e.sources[0], 'data-target': e.targets[0] }, edgeLayer);
      for (const sec of e.sections ?? []) {
        const pts = [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint];
        el('path', { d: pts.map((p, k) => `${k ? 'L' : 'M'}${(p.x + o.x).toFixed(1)},${(p.y + o.y).toFixed(1)}`).join(' ') }, g);
      }
      for (const l of e.labels ?? []) {
        const t = el('text', { x: (l.x + o.x).toFixed(1), y: (l.y + o.y + 10).toFixed(1) }, g);
        t.textContent = l.text;
      }
      this.edges.push({ g, source: e.sources[0], target: e.targets[0] });
    }
    const d = abs.get('#decide');
    if (d && stays.length) {
      stays.forEach((s, k) => {
        const t = el('text', { class: 'note', x: d.x - 4, y: d.y + 56 + k * 13 }, svg);
        t.textContent = s;
      });
    }
    this.svg = svg;
  }

  drawNode(layer, n, x, y, byId) {
    if (n.id.endsWith('#init')) {
      el('circle', { class: 'pseudo', cx: x + n.width / 2, cy: y + n.height / 2, r: n.width / 2 }, layer);
      return;
    }
    if (n.id === '#decide') {
      const cx = x + n.width / 2;
      const cy = y + n.height / 2;
      el('path', { class: 'decide', d: `M${cx},${y} L${x + n.width},${cy} L${cx},${y + n.height} L${x},${cy} z` }, layer);
      const t = el('text', { class: 'note', x: x - 14, y: y - 6 }, layer);
      t.textContent = 'policy.step (any state)';
      return;
    }
    const s = byId.get(n.id);
    const path = pathOf(this.root, n.id);
    const compound = s.children.length > 0;
    const g = el('g', { class: `state${compound ? ' compound' : ''}`, 'data-state': path, 'data-id': n.id }, layer);
    el('rect', { class: 'box', x, y, width: n.width, height: n.height, rx: 8 }, g);
    el('rect', { class: 'swatch', x: x + 8, y: y + 9, width: 10, height: 10, fill: stateColor(path) }, g);
    const label = el('text', { class: 'label', x: x + 24, y: y + 18 }, g);
    label.textContent = s.key;
    if (s.description) el('title', {}, g).textContent = `${s.key}: ${s.description}`;
    const badges = el('g', { class: 'badges' }, g);
    this.nodes.set(path, { g, x, y, w: n.width, h: n.height, badges });
  }

  /** Puts one badge per rank into the node of the rank's state (its substate when reported). */
  setBadges(rankPath, rankLife) {
    const groups = new Map();
    rankPath.forEach((p, r) => {
      let key = p;
      // a substate the chart lacks falls back to its parent; an unknown state gets no badge
      while (key && !this.nodes.has(key)) key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
      if (!key) return;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    });
    for (const [path, n] of this.nodes) {
      const ranks = groups.get(path) ?? [];
      n.g.classList.toggle('occupied', ranks.length > 0);
      const sig = ranks.join(',') + '|' + ranks.map((r) => rankLife[r]).join(',');
      if (n.sig === sig) continue;
      n.sig = sig;
      n.badges.textContent = '';
      const perRow = Math.max(1, Math.floor((n.w - 14) / BADGE));
      const shown = ranks.length > BADGES_MAX ? ranks.slice(0, BADGES_MAX - 1) : ranks;
      const top = n.y + 36;
      shown.forEach((r, k) => {
        const cx = n.x + 14 + (k % perRow) * BADGE;
        const cy = top + Math.floor(k / perRow) * BADGE;
        const b = el('g', { class: `badge life-${rankLife[r] ?? 'pending'}`, 'data-rank': r }, n.badges);
        el('circle', { cx, cy, r: 7.5, fill: rankLife[r] === 'failed' ? '#ff1744' : stateColor(path) }, b);
        el('text', { x: cx, y: cy }, b).textContent = String(r);
        el('title', {}, b).textContent = `rank ${r}: ${path} (${rankLife[r] ?? 'pending'})`;
      });
      if (shown.length < ranks.length) {
        const k = shown.length;
        const t = el('text', { class: 'note', x: n.x + 8 + (k % perRow) * BADGE, y: top + 4 + Math.floor(k / perRow) * BADGE, 'data-more': ranks.length - k }, n.badges);
        t.textContent = `+${ranks.length - k}`;
      }
    }
  }

  /** Marks the state an event is about (the scrubbed or clicked one). */
  setCurrent(path) {
    let key = path;
    while (key && !this.nodes.has(key)) key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
    for (const [p, n] of this.nodes) n.g.classList.toggle('current', p === key);
    this.current = key || null;
  }

  /** Briefly highlights the edges that lead into `toPath` and flashes its node. */
  fire(toPath) {
    const id = `${this.root}.${toPath}`;
    for (const e of this.edges) {
      const hit = e.target === id || (e.target.startsWith(id + '.') && e.source === '#decide');
      e.g.classList.remove('firing');
      if (hit) {
        void e.g.getBoundingClientRect(); // restart the animation
        e.g.classList.add('firing');
      }
    }
    const n = this.nodes.get(toPath);
    if (n) {
      n.g.classList.remove('flash');
      void n.g.getBoundingClientRect();
      n.g.classList.add('flash');
    }
    clearTimeout(this.fireTimer);
    this.fireTimer = setTimeout(() => {
      for (const e of this.edges) e.g.classList.remove('firing');
      for (const m of this.nodes.values()) m.g.classList.remove('flash');
    }, 1500);
  }
}
