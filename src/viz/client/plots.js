/**
 * Metric plots (uPlot) against the optimizer step, with a marker at the scrubbed step: loss,
 * grad_mean (log scale), grad_norm, learning rate and tokens/s always; the evaluation (eval loss,
 * eval accuracy) and preference metrics (rewards/accuracies, rewards/margins, rewards of chosen and
 * rejected, eval rewards) as soon as the run has them. Step rows and evaluation rows of
 * metrics.jsonl share step numbers, so each kind keeps its own x axis. Also the run's
 * eval_results.json as a list. Rows come from /api/metrics and /api/results. Owns only its
 * plot elements.
 */
const SERIES = [
  { key: 'loss', title: 'loss', color: '#8ab4f8' },
  { key: 'grad_mean', title: 'grad_mean (log)', color: '#fdd663', log: true },
  { key: 'grad_norm', title: 'grad_norm', color: '#f28b82' },
  { key: 'lr', title: 'learning rate', color: '#81c995' },
  { key: 'tokens_per_s', title: 'tokens/s', color: '#c58af9' },
  // shown once the run has them
  { key: 'eval_loss', title: 'eval loss', color: '#ffb74d', eval: true, optional: true },
  { key: 'eval_accuracy', title: 'eval accuracy', color: '#4dd0e1', eval: true, optional: true },
  { key: 'rewards/accuracies', title: 'rewards/accuracies', color: '#aed581', optional: true },
  { key: 'rewards/margins', title: 'rewards/margins', color: '#ff8a65', optional: true },
  { key: 'rewards/chosen', title: 'rewards/chosen (green), rejected (red)', color: '#81c995', also: { key: 'rewards/rejected', color: '#f28b82' }, optional: true },
  { key: 'eval_rewards/accuracies', title: 'eval rewards/accuracies', color: '#ffd54f', eval: true, optional: true },
  { key: 'eval_rewards/margins', title: 'eval rewards/margins', color: '#ffab91', eval: true, optional: true },
];

/** Tick labels that stay readable for learning rates (1e-5) and tiny gradients alike. */
function fmt(v) {
  if (v == null) return '';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-2 || a >= 1e9) return v.toExponential(0);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

const KEYS = SERIES.flatMap((s) => (s.also ? [s.key, s.also.key] : [s.key]));

/** The metric fields the page asks for. */
export const METRIC_FIELDS = ['step', ...KEYS, 'tokens', 'step_ms'];

/** Appends a row to columns; a step at or before the last one means a restart re-ran it. */
function push(cols, step, values) {
  const xs = cols.step;
  if (xs.length && step <= xs[xs.length - 1]) {
    // a restart re-ran steps after a checkpoint: the later rows replace the abandoned ones
    let k = xs.length;
    while (k > 0 && xs[k - 1] >= step) k--;
    for (const key of Object.keys(cols)) cols[key].length = k;
  }
  xs.push(step);
  for (const [k, v] of Object.entries(values)) cols[k].push(v);
}

export class Plots {
  constructor(box) {
    this.box = box;
    // training rows and evaluation rows, each on its own steps
    this.cols = { step: [] };
    this.evalCols = { step: [] };
    for (const k of KEYS) {
      this.cols[k] = [];
      this.evalCols[k] = [];
    }
    this.plots = []; // { series, plot }
    this.mark = null;
    this.empty = document.createElement('div');
    this.empty.className = 'empty';
    this.empty.textContent = 'no metrics yet (metrics.jsonl)';
    box.appendChild(this.empty);
    this.results = document.createElement('div');
    this.results.className = 'results';
    box.appendChild(this.results);
    new ResizeObserver(() => this.resize()).observe(box);
  }

  /** Appends metric columns ({ step: [...], loss: [...], ... }) from /api/metrics?fields=. */
  addColumns(c) {
    const n = c.step ? c.step.length : 0;
    for (let i = 0; i < n; i++) {
      const at = (k) => (c[k] ? c[k][i] : null);
      // an evaluation row has eval_* figures and no training loss
      const isEval = typeof at('loss') !== 'number' && KEYS.some((k) => k.startsWith('eval_') && typeof at(k) === 'number');
      const values = {};
      for (const s of SERIES) {
        for (const { key, log } of [s, ...(s.also ? [s.also] : [])]) {
          let v = at(key);
          if (key === 'tokens_per_s' && typeof v !== 'number' && c.step_ms?.[i] > 0 && typeof c.tokens?.[i] === 'number') v = (c.tokens[i] * 1000) / c.step_ms[i];
          // a log scale cannot show 0 or negative values: leave a gap
          if (typeof v !== 'number' || !Number.isFinite(v) || (log && v <= 0)) v = null;
          values[key] = v;
        }
      }
      push(isEval ? this.evalCols : this.cols, c.step[i], values);
    }
    if (!n) return;
    this.sync();
  }

  /** Creates the plots that have data now and updates all of them. */
  sync() {
    for (const s of SERIES) {
      const cols = s.eval ? this.evalCols : this.cols;
      if (this.plots.some((p) => p.series === s)) continue;
      if (s.optional && !cols[s.key].some((v) => v !== null)) continue;
      if (!s.optional && !this.cols.step.length) continue;
      this.create(s);
    }
    for (const p of this.plots) p.plot.setData(this.dataOf(p.series));
  }

  dataOf(s) {
    const cols = s.eval ? this.evalCols : this.cols;
    return [cols.step, cols[s.key], ...(s.also ? [cols[s.also.key]] : [])];
  }

  create(s) {
    this.empty.remove();
    const marker = {
      hooks: {
        draw: [
          (u) => {
            if (this.mark === null) return;
            const x = u.valToPos(this.mark, 'x', true);
            if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
            const c = u.ctx;
            c.save();
            c.strokeStyle = '#ffb74d';
            c.lineWidth = 2 * devicePixelRatio;
            c.beginPath();
            c.moveTo(x, u.bbox.top);
            c.lineTo(x, u.bbox.top + u.bbox.height);
            c.stroke();
            c.restore();
          },
        ],
      },
    };
    const cell = document.createElement('div');
    cell.className = 'plot';
    cell.dataset.series = s.key;
    // keep the order of SERIES whatever arrives first
    const after = this.plots.filter((p) => SERIES.indexOf(p.series) < SERIES.indexOf(s)).pop();
    if (after) after.plot.root.parentElement.after(cell);
    else this.box.prepend(cell);
    const axis = { stroke: '#8b96a0', grid: { stroke: '#2a343e' }, ticks: { stroke: '#2a343e' } };
    const line = (label, color) => ({ label, stroke: color, width: 1.5, spanGaps: !!s.eval, points: { show: !!s.eval } });
    // eslint-disable-next-line no-undef
    const plot = new uPlot(
      {
        title: s.title,
        width: Math.max(240, cell.clientWidth - 4),
        height: 150,
        legend: { show: false },
        scales: { x: { time: false }, y: s.log ? { distr: 3 } : {} },
        axes: [{ ...axis }, { ...axis, size: 60, values: (u, splits) => splits.map(fmt) }],
        series: [{ label: 'step' }, line(s.title, s.color), ...(s.also ? [line(s.also.key, s.also.color)] : [])],
        plugins: [marker],
      },
      this.dataOf(s),
      cell,
    );
    this.plots.splice(after ? this.plots.indexOf(after) + 1 : 0, 0, { series: s, plot });
  }

  /** The run's eval_results.json (final figures), as `key: value` lines. */
  setResults(r) {
    this.results.textContent = '';
    const flat = [];
    for (const [k, v] of Object.entries(r ?? {})) {
      if (typeof v === 'number' || typeof v === 'string') flat.push([k, v]);
      else if (v && typeof v === 'object' && typeof v.answerAccuracy === 'number') flat.push([`${k} accuracy`, `${(100 * v.answerAccuracy).toFixed(1)}% (${v.answersCorrect}/${v.answers})`]);
    }
    if (!flat.length) return;
    const h = document.createElement('h3');
    h.textContent = 'eval_results.json';
    this.results.appendChild(h);
    const list = document.createElement('div');
    list.className = 'items';
    for (const [k, v] of flat) {
      const item = document.createElement('span');
      const key = document.createElement('span');
      key.className = 'k';
      key.textContent = k;
      item.append(key, ` ${typeof v === 'number' ? String(Number(v.toPrecision(6))) : v}`);
      item.dataset.key = k;
      list.appendChild(item);
    }
    this.results.appendChild(list);
  }

  resize() {
    for (const { plot } of this.plots) {
      const w = Math.max(240, plot.root.parentElement.clientWidth - 4);
      if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height: 150 });
    }
  }

  /** Moves the step marker (the scrubbed event's step). */
  setMark(step) {
    if (step === this.mark) return;
    this.mark = step;
    for (const { plot } of this.plots) plot.redraw(false, false);
  }
}
