/**
 * The page: loads the chart, the run's events and metrics from the server, keeps the run model,
 * and ties the views together around one cursor (the event being looked at). In live mode the
 * cursor follows the newest event and events arrive over server-sent events (the browser resumes
 * with Last-Event-ID after a disconnect); scrubbing or clicking an event stops following.
 * Talks only to its own server.
 */
import { Diagram } from './diagram.js';
import { EventLogView } from './eventlog.js';
import { ClusterView } from './cluster.js';
import { METRIC_FIELDS, Plots } from './plots.js';
import { Timeline } from './timeline.js';
import { RunModel } from './model.js';

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

class App {
  constructor(info, chart) {
    this.info = info;
    this.chart = chart;
    this.model = new RunModel();
    this.cursor = -1;
    this.follow = true;
    this.shown = null; // what the views last showed: { cursor, version }
    this.metricsNext = 0;
    this.diagram = new Diagram($('diagram'));
    this.log = new EventLogView($('log'), this.model, (i) => this.select(i));
    this.cluster = new ClusterView($('cluster'), this.model, (i) => this.select(i));
    this.timeline = new Timeline($('timeline'), $('legend'), this.model, (i) => this.select(i));
    this.plots = new Plots($('plots'));
    this.wire();
  }

  wire() {
    const scrub = $('scrub');
    scrub.addEventListener('input', () => this.scrubTo(Number(scrub.value)));
    $('scrub-prev').addEventListener('click', () => this.step(-1));
    $('scrub-next').addEventListener('click', () => this.step(1));
    $('follow').addEventListener('click', () => this.setFollow(!this.follow));
    document.addEventListener('keydown', (ev) => {
      if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
      if (ev.key === 'ArrowLeft') this.step(-1);
      if (ev.key === 'ArrowRight') this.step(1);
    });
    let t = null;
    const filter = () => {
      clearTimeout(t);
      t = setTimeout(() => {
        const rank = $('filter-rank').value;
        this.log.setFilter({ text: $('filter-text').value.trim().toLowerCase(), type: $('filter-type').value, rank: rank === '' ? null : Number(rank) });
        this.updateCounts();
      }, 120);
    };
    $('filter-text').addEventListener('input', filter);
    $('filter-type').addEventListener('change', filter);
    $('filter-rank').addEventListener('input', filter);
  }

  addEvents(list) {
    for (const e of list) if (e && typeof e.type === 'string') this.model.append(e);
    this.log.refresh();
    this.timelineDirty = true;
    this.invalidate();
  }

  /** Moves the cursor to transition k (the scrubber's unit). */
  scrubTo(k) {
    const tr = this.model.transitions;
    if (!tr.length) return;
    const i = tr[Math.max(0, Math.min(tr.length - 1, k))];
    this.select(i);
  }

  step(d) {
    const tr = this.model.transitions;
    if (!tr.length) return;
    const done = this.model.transitionsUpTo(this.cursor); // transitions at or before the cursor
    const atOne = done > 0 && tr[done - 1] === this.cursor;
    const k = d > 0 ? done : atOne ? done - 2 : done - 1;
    this.scrubTo(Math.max(0, k));
  }

  /** Looks at event i: stops following, and every view shows the run as it was then. */
  select(i) {
    this.setFollow(false);
    this.cursor = Math.max(-1, Math.min(this.model.length - 1, i));
    this.invalidate();
  }

  setFollow(on) {
    this.follow = on;
    $('follow').setAttribute('aria-pressed', String(on));
    if (on) this.invalidate();
  }

  invalidate() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  render() {
    const m = this.model;
    if (this.follow) this.cursor = m.length - 1;
    if (this.timelineDirty) {
      this.timelineDirty = false;
      this.timeline.redraw();
      this.updateTypes();
    }
    const same = this.shown && this.shown.cursor === this.cursor && this.shown.version === m.version;
    if (same) return;
    const moved = !this.shown || this.shown.cursor !== this.cursor;
    this.shown = { cursor: this.cursor, version: m.version };
    const s = m.stateAt(this.cursor);
    const e = m.events[this.cursor];
    this.diagram.setBadges(s.rankPath, s.rankLife);
    this.diagram.setCurrent(m.focusOf(this.cursor, s));
    if (moved && e && e.type === 'rank.policy.transition') this.diagram.fire(String(e.path ?? e.to));
    this.cluster.render(s, this.cursor);
    const step = this.cursor >= 0 ? m.stepOf[this.cursor] : 0;
    this.timeline.setCursor(step);
    this.plots.setMark(step);
    this.log.setSelected(this.cursor, !this.follow);
    const scrub = $('scrub');
    const n = m.transitions.length;
    scrub.max = String(Math.max(0, n - 1));
    scrub.disabled = n === 0;
    const k = m.transitionsUpTo(this.cursor);
    scrub.value = String(Math.max(0, k - 1));
    const last = k > 0 ? m.events[m.transitions[k - 1]] : null;
    $('scrub-label').textContent = n
      ? `transition ${k}/${n} · step ${step}${last ? ` · r${last.rank}: ${last.from} → ${last.path ?? last.to}` : ''}`
      : 'no transitions yet';
    $('job-state').textContent = `job: ${s.jobState}`;
    this.updateCounts();
    document.body.dataset.cursor = String(this.cursor);
    document.body.dataset.current = this.diagram.current ?? '';
  }

  updateCounts() {
    $('counts').textContent = `${this.model.length} events · ${this.model.transitions.length} transitions · step ${this.model.maxStep}`;
    $('log-count').textContent = `(${this.log.visible.length} of ${this.model.length} shown)`;
  }

  updateTypes() {
    const sel = $('filter-type');
    const have = new Set([...sel.options].map((o) => o.value));
    for (const t of [...this.model.types.keys()].sort()) {
      if (have.has(t)) continue;
      const o = document.createElement('option');
      o.value = t;
      o.textContent = t;
      sel.appendChild(o);
    }
  }

  /** Fetches metric rows appended since the last fetch; a request during a fetch runs after it. */
  async loadMetrics() {
    if (this.metricsBusy) {
      this.metricsAgain = true;
      return;
    }
    this.metricsBusy = true;
    try {
      do {
        this.metricsAgain = false;
        const r = await getJson(`/api/metrics?since=${this.metricsNext}&fields=${METRIC_FIELDS.join(',')}`);
        this.metricsNext = r.next;
        this.plots.addColumns(r.columns);
      } while (this.metricsAgain);
    } finally {
      this.metricsBusy = false;
    }
  }

  /** The run's eval_results.json (written at the end of a run that evaluates). */
  async loadResults() {
    this.plots.setResults(await getJson('/api/results'));
  }

  /** Live events over server-sent events; EventSource reconnects and sends Last-Event-ID itself. */
  connect(since) {
    const conn = $('conn');
    const es = new EventSource(`/api/stream?since=${since}`);
    let expected = since;
    let metricsTimer = null;
    let resultsTimer = null;
    es.onopen = () => {
      conn.textContent = 'live';
      conn.className = 'pill ok';
    };
    es.onerror = () => {
      conn.textContent = 'reconnecting…';
      conn.className = 'pill bad';
    };
    // the server no longer holds what this page missed: start over from /api/events
    es.addEventListener('reset', () => {
      es.close();
      location.reload();
    });
    // events that arrive within one frame are taken in together
    let batch = [];
    es.onmessage = (ev) => {
      const seq = Number(ev.lastEventId);
      if (seq < expected) return; // already have it (a resumed stream repeats nothing, but be safe)
      expected = seq + 1;
      const e = JSON.parse(ev.data);
      if (!batch.length) {
        requestAnimationFrame(() => {
          const b = batch;
          batch = [];
          this.addEvents(b);
        });
      }
      batch.push(e);
      if ((e.type === 'rank.done' || e.type === 'job.state') && !resultsTimer) {
        resultsTimer = setTimeout(() => {
          resultsTimer = null;
          this.loadResults().catch((err) => console.warn('cannot load eval results', err));
        }, 1000);
      }
      if ((e.type === 'job.step' || e.type === 'job.eval') && !metricsTimer) {
        metricsTimer = setTimeout(() => {
          metricsTimer = null;
          this.loadMetrics().catch((err) => console.warn('cannot load metrics', err));
        }, 500);
      }
    };
    this.es = es;
  }
}

async function main() {
  const t0 = performance.now();
  const timings = {};
  const [info, chart] = await Promise.all([getJson('/api/info'), getJson('/api/chart')]);
  $('mode').textContent = info.mode === 'replay' ? `replay · ${info.run}` : info.mode === 'follow' ? `following · ${info.run}` : info.mode;
  const app = new App(info, chart);
  window.__viz = app;
  // lay the diagram out while the run's data downloads
  const drawn = app.diagram.draw(chart).then(() => (timings.diagram = performance.now() - t0));
  const [events, metrics] = await Promise.all([getJson('/api/events'), getJson(`/api/metrics?fields=${METRIC_FIELDS.join(',')}`)]);
  timings.fetched = performance.now() - t0;
  await drawn;
  app.model.base = events.first;
  app.addEvents(events.items);
  timings.model = performance.now() - t0;
  app.metricsNext = metrics.next;
  app.plots.addColumns(metrics.columns);
  await app.loadResults();
  timings.plots = performance.now() - t0;
  if (info.mode === 'replay') {
    $('conn').textContent = 'finished run';
  } else if (info.mode !== 'empty') {
    app.connect(events.next);
  }
  app.render();
  timings.rendered = performance.now() - t0;
  app.timings = timings;
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  console.error('visualizer failed to start:', e);
  document.body.dataset.ready = 'error';
});
