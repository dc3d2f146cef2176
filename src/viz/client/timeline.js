/**
 * The timeline: one lane per rank, coloured by policy state against the step, with rank failures
 * (red ticks), restarts (dashed lines) and the scrubbed step (orange line). Drawn on a canvas (a
 * long run has too many segments for SVG); the lanes are cached so moving the cursor is cheap.
 * Clicking a lane selects that rank's transition nearest the clicked step. Never redraws the lanes
 * just to move the cursor.
 */
import { stateColor } from './diagram.js';
import { POLICY_STATES } from './model.js';

const LANE = 12;
const GAP = 2;
const LEFT = 34;

export class Timeline {
  constructor(canvas, legend, model, onSelect) {
    this.canvas = canvas;
    this.model = model;
    this.onSelect = onSelect;
    this.base = document.createElement('canvas');
    this.cursorStep = null;
    this.colors = {};
    const css = getComputedStyle(document.documentElement);
    for (const s of POLICY_STATES) {
      this.colors[s] = css.getPropertyValue(`--${s}`).trim() || '#999';
      const item = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.background = stateColor(s);
      item.append(sw, s);
      legend.appendChild(item);
    }
    canvas.addEventListener('click', (ev) => this.click(ev));
    new ResizeObserver(() => this.redraw()).observe(canvas);
  }

  geometry() {
    const world = Math.max(1, this.model.head.world, this.model.perRank.length);
    const w = Math.max(200, this.canvas.clientWidth);
    // one step of room past the newest, so a transition at the last step still shows
    return { world, w, h: world * (LANE + GAP) + 16, maxStep: this.model.maxStep + 1 };
  }

  xOf(step, g) {
    return LEFT + ((g.w - LEFT - 6) * step) / g.maxStep;
  }

  /** Redraws the lanes (after new events or a resize). */
  redraw() {
    const g = this.geometry();
    const dpr = devicePixelRatio || 1;
    for (const c of [this.canvas, this.base]) {
      c.width = Math.round(g.w * dpr);
      c.height = Math.round(g.h * dpr);
    }
    this.canvas.style.height = `${g.h}px`;
    const ctx = this.base.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.w, g.h);
    ctx.font = '10px sans-serif';
    ctx.textBaseline = 'middle';
    const m = this.model;
    for (let r = 0; r < g.world; r++) {
      const y = r * (LANE + GAP);
      ctx.fillStyle = '#8b96a0';
      ctx.fillText(`r${r}`, 4, y + LANE / 2);
      const segs = m.perRank[r] ?? [];
      // ranks start in warmup
      let from = 0;
      let state = 'warmup';
      let lastX = -1;
      const paint = (a, b, st) => {
        const x0 = this.xOf(a, g);
        const x1 = Math.max(this.xOf(b, g), x0 + 1);
        if (x1 <= lastX) return; // many transitions in one pixel: the first wins
        ctx.fillStyle = this.colors[st.split('.')[0]] ?? '#999';
        ctx.fillRect(Math.max(x0, lastX), y, x1 - Math.max(x0, lastX), LANE);
        lastX = x1;
      };
      for (const s of segs) {
        if (s.step > from) paint(from, s.step, state);
        from = Math.max(from, s.step);
        state = s.path;
      }
      paint(from, g.maxStep, state);
    }
    const axisY = g.world * (LANE + GAP) + 8;
    ctx.fillStyle = '#8b96a0';
    ctx.fillText('0', LEFT, axisY);
    ctx.textAlign = 'right';
    ctx.fillText(`step ${m.maxStep}`, g.w - 6, axisY);
    ctx.textAlign = 'left';
    ctx.strokeStyle = '#e4e8ec';
    ctx.setLineDash([3, 3]);
    for (const i of m.restartsAt) {
      const x = this.xOf(m.stepOf[i], g);
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, g.world * (LANE + GAP));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.fillStyle = '#ff1744';
    for (const i of m.failures) {
      const e = m.events[i];
      if (!Number.isInteger(e.rank)) continue;
      ctx.fillRect(this.xOf(m.stepOf[i], g) - 1, e.rank * (LANE + GAP) - 1, 3, LANE + 2);
    }
    this.g = g;
    this.paintCursor();
  }

  setCursor(step) {
    if (step === this.cursorStep) return;
    this.cursorStep = step;
    this.paintCursor();
  }

  paintCursor() {
    const g = this.g;
    if (!g) return;
    const ctx = this.canvas.getContext('2d');
    const dpr = devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(this.base, 0, 0);
    if (this.cursorStep === null) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const x = this.xOf(this.cursorStep, g);
    ctx.fillStyle = '#ffb74d';
    ctx.fillRect(x - 1, 0, 2, g.world * (LANE + GAP));
  }

  click(ev) {
    const g = this.g;
    if (!g) return;
    const rect = this.canvas.getBoundingClientRect();
    const r = Math.floor((ev.clientY - rect.top) / (LANE + GAP));
    const step = ((ev.clientX - rect.left - LEFT) * g.maxStep) / (g.w - LEFT - 6);
    const segs = this.model.perRank[r];
    if (!segs || !segs.length) return;
    let best = segs[0];
    for (const s of segs) if (Math.abs(s.step - step) < Math.abs(best.step - step)) best = s;
    this.onSelect(best.index);
  }
}
