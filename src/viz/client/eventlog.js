/**
 * The event log: a filterable, virtualized list (only the rows in view, plus a margin, exist in
 * the DOM), so 100,000 events scroll and filter without stalling the page. Clicking a row selects
 * that event (the page moves the scrubber and marks the state). Never renders event text as HTML.
 */
import { summarize } from './model.js';

const ROW_H = 20;
const OVERSCAN = 12;

function kindOf(type) {
  if (type === 'rank.policy.transition') return 'transition';
  if (type.startsWith('chaos.')) return 'chaos';
  if (type.endsWith('.failed')) return 'fail';
  return 'other';
}

export class EventLogView {
  constructor(box, model, onSelect) {
    this.box = box;
    this.spacer = box.querySelector('.spacer');
    this.rowsEl = box.querySelector('.rows');
    this.model = model;
    this.onSelect = onSelect;
    this.filter = { text: '', type: '', rank: null };
    this.visible = []; // event indices passing the filter
    this.scanned = 0;
    this.selected = -1;
    this.stick = true; // follow the newest row while the view is at the bottom
    this.pending = false;
    box.addEventListener('scroll', () => {
      this.stick = box.scrollTop + box.clientHeight >= box.scrollHeight - ROW_H;
      this.schedule();
    });
    this.rowsEl.addEventListener('click', (ev) => {
      const row = ev.target.closest('.row');
      if (row) this.onSelect(Number(row.dataset.index));
    });
  }

  setFilter(f) {
    this.filter = { ...this.filter, ...f };
    this.visible = [];
    this.scanned = 0;
    this.refresh();
  }

  matches(i) {
    const e = this.model.events[i];
    const f = this.filter;
    if (f.type && e.type !== f.type) return false;
    if (f.rank !== null && e.rank !== f.rank) return false;
    if (f.text) {
      // searched text is built once per event, on the first text filter that reaches it
      if (e.__text === undefined) Object.defineProperty(e, '__text', { value: JSON.stringify(e).toLowerCase(), enumerable: false });
      if (!e.__text.includes(f.text)) return false;
    }
    return true;
  }

  /** Takes in events appended since the last call. */
  refresh() {
    const n = this.model.length;
    const f = this.filter;
    const plain = !f.text && !f.type && f.rank === null;
    for (let i = this.scanned; i < n; i++) if (plain || this.matches(i)) this.visible.push(i);
    this.scanned = n;
    this.spacer.style.height = `${this.visible.length * ROW_H}px`;
    if (this.stick) this.box.scrollTop = this.box.scrollHeight;
    this.schedule(true);
  }

  schedule(force = false) {
    if (force) this.dirty = true;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const top = this.box.scrollTop;
    const end = Math.min(this.visible.length, Math.ceil((top + this.box.clientHeight) / ROW_H) + OVERSCAN);
    // a filter that just shrank the list can leave the scroll position past its end for a frame
    const start = Math.min(end, Math.max(0, Math.floor(top / ROW_H) - OVERSCAN));
    const key = `${start}:${end}:${this.selected}:${this.visible.length}`;
    if (key === this.lastKey && !this.dirty) return;
    this.lastKey = key;
    this.dirty = false;
    this.rowsEl.style.transform = `translateY(${start * ROW_H}px)`;
    const rows = this.rowsEl.children;
    const want = end - start;
    while (rows.length > want) this.rowsEl.lastElementChild.remove();
    while (rows.length < want) {
      const r = document.createElement('div');
      r.className = 'row';
      for (const c of ['seq', 't', 'ty', 'rk', 'sum']) {
        const s = document.createElement('span');
        s.className = c;
        r.appendChild(s);
        r.appendChild(document.createTextNode(' '));
      }
      this.rowsEl.appendChild(r);
    }
    for (let k = 0; k < want; k++) {
      const i = this.visible[start + k];
      const e = this.model.events[i];
      const r = rows[k];
      if (r.dataset.index === String(i) && r.dataset.sel === String(i === this.selected)) continue;
      r.dataset.index = String(i);
      r.dataset.sel = String(i === this.selected);
      r.className = `row kind-${kindOf(e.type)}${i === this.selected ? ' selected' : ''}`;
      const [seq, t, ty, rk, sum] = r.querySelectorAll('span');
      seq.textContent = `#${this.model.base + i}`;
      t.textContent = typeof e.t === 'number' ? `${(e.t / 1000).toFixed(1)}s` : '';
      ty.textContent = e.type;
      rk.textContent = Number.isInteger(e.rank) ? `r${e.rank}` : '';
      sum.textContent = summarize(e);
    }
    this.rendered = want;
  }

  /** Marks event i and scrolls it into view (when the filter shows it). */
  setSelected(i, scroll = true) {
    if (i === this.selected) return;
    this.selected = i;
    if (scroll) {
      const k = lowerBound(this.visible, i);
      if (k < this.visible.length && this.visible[k] === i) {
        const y = k * ROW_H;
        if (y < this.box.scrollTop || y > this.box.scrollTop + this.box.clientHeight - ROW_H) {
          this.box.scrollTop = Math.max(0, y - this.box.clientHeight / 2);
          this.stick = false;
        }
      }
    }
    this.schedule(true);
  }
}

function lowerBound(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (a[m] < x) lo = m + 1;
    else hi = m;
  }
  return lo;
}
