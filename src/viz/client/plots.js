/**
 * Metric plots (uPlot): loss, grad_mean (log scale), grad_norm, learning rate and tokens/s against
 * the optimizer step, with a marker at the scrubbed step. Rows come from metrics.jsonl via
 * /api/metrics. Owns only its plot elements.
 */
const SERIES = [
  { key: 'loss', title: 'loss', color: '#8ab4f8' },
  { key: 'grad_mean', title: 'grad_mean (log)', color: '#fdd663', log: true },
  { key: 'grad_norm', title: 'grad_norm', color: '#f28b82' },
  { key: 'lr', title: 'learning rate', color: '#81c995' },
  { key: 'tokens_per_s', title: 'tokens/s', color: '#c58af9' },
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

/** The metric fields the page asks for. */
export const METRIC_FIELDS = ['step', ...SERIES.map((s) => s.key), 'tokens', 'step_ms'];

export class Plots {
  constructor(box) {
    this.box = box;
    this.cols = { step: [] };
    for (const s of SERIES) this.cols[s.key] = [];
    this.plots = [];
    this.mark = null;
    this.empty = document.createElement('div');
    this.empty.className = 'empty';
    this.empty.textContent = 'no metrics yet (metrics.jsonl)';
    box.appendChild(this.empty);
    new ResizeObserver(() => this.resize()).observe(box);
  }

  /** Appends metric columns ({ step: [...], loss: [...], ... }) from /api/metrics?fields=. */
  addColumns(c) {
    const n = c.step ? c.step.length : 0;
    for (let i = 0; i < n; i++) {
      const step = c.step[i];
      const xs = this.cols.step;
      if (xs.length && step <= xs[xs.length - 1]) {
        // a restart re-ran steps after a checkpoint: the later rows replace the abandoned ones
        let k = xs.length;
        while (k > 0 && xs[k - 1] >= step) k--;
        for (const key of Object.keys(this.cols)) this.cols[key].length = k;
      }
      this.cols.step.push(step);
      for (const s of SERIES) {
        let v = c[s.key] ? c[s.key][i] : null;
        if (s.key === 'tokens_per_s' && typeof v !== 'number' && c.step_ms?.[i] > 0 && typeof c.tokens?.[i] === 'number') v = (c.tokens[i] * 1000) / c.step_ms[i];
        // a log scale cannot show 0 or negative values: leave a gap
        if (typeof v !== 'number' || !Number.isFinite(v) || (s.log && v <= 0)) v = null;
        this.cols[s.key].push(v);
      }
    }
    if (!n) return;
    if (!this.plots.length) this.create();
    else this.plots.forEach((p, k) => p.setData([this.cols.step, this.cols[SERIES[k].key]]));
  }

  width() {
    const first = this.plots[0]?.root.parentElement ?? this.box;
    return Math.max(240, Math.floor(first.clientWidth || 300) - 4);
  }

  create() {
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
    for (const s of SERIES) {
      const cell = document.createElement('div');
      cell.className = 'plot';
      cell.dataset.series = s.key;
      this.box.appendChild(cell);
      const axis = { stroke: '#8b96a0', grid: { stroke: '#2a343e' }, ticks: { stroke: '#2a343e' } };
      // eslint-disable-next-line no-undef
      const p = new uPlot(
        {
          title: s.title,
          width: Math.max(240, cell.clientWidth - 4),
          height: 150,
          legend: { show: false },
          scales: { x: { time: false }, y: s.log ? { distr: 3 } : {} },
          axes: [{ ...axis }, { ...axis, size: 60, values: (u, splits) => splits.map(fmt) }],
          series: [{ label: 'step' }, { label: s.title, stroke: s.color, width: 1.5, spanGaps: false }],
          plugins: [marker],
        },
        [this.cols.step, this.cols[s.key]],
        cell,
      );
      this.plots.push(p);
    }
  }

  resize() {
    for (const p of this.plots) {
      const w = Math.max(240, p.root.parentElement.clientWidth - 4);
      if (Math.abs(w - p.width) > 2) p.setSize({ width: w, height: 150 });
    }
  }

  /** Moves the step marker (the scrubbed event's step). */
  setMark(step) {
    if (step === this.mark) return;
    this.mark = step;
    for (const p of this.plots) p.redraw(false, false);
  }
}
