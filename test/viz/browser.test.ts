/**
 * The visualizer in a real browser (headless Chromium via playwright-core): the page loads with
 * no console errors, draws all five policy states from the machine's definition, moves a rank's
 * badge when a transition arrives live (also across a dropped stream), time-travels with the
 * replay scrubber and from log entries, and loads 100,000 events (server and page) and stays
 * responsive. Screenshots go to .tap/viz-artifacts/. Skipped only when no Chromium is installed.
 */
import t, { type Test } from 'tap';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { EventLog } from '../../src/actors/events/EventLog.js';
import { createLogger } from '../../src/util/Logger.js';
import { startVizServer } from '../../src/viz/startVizServer.js';
import { findChromium, launch, openPage, screenshot } from './helpers/browser.js';
import { writeSyntheticRun } from './helpers/syntheticRun.js';

const FIVE = ['warmup', 'normal', 'vanishing-intervention', 'late-stage', 'explode-clip'];
const exe = findChromium();
const skip = exe ? false : 'no Chromium found (install Debian `chromium`, as scripts/setup.sh does, or set CHROMIUM_PATH)';
const logger = createLogger('warn');

let browser: Browser | null = null;
t.teardown(async () => {
  await browser?.close();
});
async function getBrowser(): Promise<Browser> {
  browser ??= await launch(exe!);
  return browser;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'viz-browser-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const badgeIn = (state: string, rank: number) => `#diagram g.state[data-state="${state}"] > g.badges > [data-rank="${rank}"]`;

async function setScrubber(page: Page, k: number): Promise<void> {
  await page.evaluate((v) => {
    const el = document.getElementById('scrub') as HTMLInputElement;
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, k);
}

interface Ev {
  type: string;
  rank?: number;
  from?: string;
  to?: string;
  step?: number;
}

t.test('live: the diagram shows the five states and a live transition moves the rank badge', { skip }, async (t) => {
  const dir = await tempDir(t);
  const live = new EventLog(null, () => 0, logger);
  live.emit({ type: 'job.state', state: 'starting', attempt: 0 });
  live.emit({ type: 'job.started', world: 4, hosts: [{ host: 'node-a', slots: 2 }, { host: 'node-b', slots: 2 }] });
  for (let r = 0; r < 4; r++) live.emit({ type: 'rank.spawn', rank: r, incarnation: 0, host: r < 2 ? 'node-a' : 'node-b' });
  const server = await startVizServer({ live, runDir: dir, logger, heartbeatMs: 1000 });
  t.teardown(() => server.close());
  const b = await getBrowser();
  const { page, errors, close } = await openPage(b, server.url);
  t.teardown(close);

  const states = await page.$$eval('#diagram g.state', (gs) => gs.map((g) => g.getAttribute('data-state')));
  for (const s of FIVE) t.ok(states.includes(s), `state ${s} is in the diagram`);
  const labels = await page.$$eval('#diagram g.state text.label', (ls) => ls.map((l) => l.textContent));
  for (const s of FIVE) t.ok(labels.includes(s), `state ${s} is labelled`);
  t.ok((await page.$$('#diagram .edge path')).length >= 7, 'the ordered policy.step edges are drawn');
  for (let r = 0; r < 4; r++) await page.waitForSelector(badgeIn('warmup', r), { timeout: 5000 });
  t.pass('every rank starts in warmup');
  await page.waitForSelector('#conn.ok', { timeout: 10_000 });

  live.emit({ type: 'rank.policy.transition', rank: 1, step: 5, from: 'warmup', to: 'normal' });
  await page.waitForSelector(badgeIn('normal', 1), { timeout: 10_000 });
  t.equal(await page.locator('#diagram [data-rank="1"]').count(), 1, 'the badge moved (not copied)');
  t.equal(await page.locator(badgeIn('warmup', 0)).count(), 1, 'other ranks stay');
  await page.waitForSelector('#diagram .edge.firing[data-target="policy.normal"]', { timeout: 5000 });
  t.pass('the firing transition is highlighted');
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), 'normal', 'the state of the newest event is marked');

  // the stream drops (proxy, sleep, server hiccup): events sent meanwhile still arrive
  server.dropStreams();
  live.emit({ type: 'rank.policy.transition', rank: 2, step: 9, from: 'warmup', to: 'explode-clip' });
  live.emit({ type: 'chaos.kill', rank: 3, what: 'kill rank 3' });
  // event text is data, never markup
  live.emit({ type: 'job.rank.failed', rank: 3, incarnation: 0, reason: 'killed by SIGKILL <img src=x onerror="window.__pwned=1">', detectedBy: 'agent' });
  await page.waitForSelector(badgeIn('explode-clip', 2), { timeout: 15_000 });
  t.pass('a transition sent while the stream was down arrives after the reconnect');
  await page.waitForSelector('#cluster .rank.failed[data-rank="3"]', { timeout: 5000 });
  t.match(await page.textContent('#cluster'), /injected faults \(1\)/, 'the injected fault is listed');
  t.match(await page.textContent('#cluster'), /<img src=x/, 'markup in an event shows as text');
  t.equal(await page.locator('img').count(), 0, 'and creates no element');
  t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  const ids = await page.evaluate(() => (window as unknown as { __viz: { model: { events: { type: string }[] } } }).__viz.model.events.map((e) => e.type));
  t.equal(ids.filter((x) => x === 'rank.policy.transition').length, 2, 'no event was received twice');

  // metrics appear live as the coordinator appends them
  await appendFile(join(dir, 'metrics.jsonl'), [1, 2, 3].map((s) => JSON.stringify({ step: s, loss: 3 - s / 10, grad_mean: 1e-3, grad_norm: 1, lr: 1e-4, tokens_per_s: 1000 })).join('\n') + '\n');
  live.emit({ type: 'job.step', step: 3, loss: 2.7, policy_state: 'normal' });
  await page.waitForSelector('#plots .plot[data-series="grad_mean"] canvas', { timeout: 10_000 });
  t.equal(await page.locator('#plots .plot').count(), 5, 'five plots: loss, grad_mean, grad_norm, lr, tokens/s');
  const shot = await screenshot(page, 'live.png');
  t.comment(`screenshot: ${shot}`);
  t.same(errors, [], 'no console errors');
});

t.test('replay: the scrubber time-travels and a log entry links to the diagram state', { skip }, async (t) => {
  const dir = await tempDir(t);
  const run = await writeSyntheticRun(dir, { events: 3000, world: 4 });
  const events = (await readFile(join(dir, 'events.ndjson'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Ev);
  const transitions = events.map((e, i) => ({ ...e, index: i })).filter((e) => e.type === 'rank.policy.transition');
  t.equal(transitions.length, run.transitions);
  const server = await startVizServer({ runDir: dir, logger });
  t.teardown(() => server.close());
  const { page, errors, close } = await openPage(await getBrowser(), server.url);
  t.teardown(close);
  t.equal(await page.getAttribute('#scrub', 'max'), String(run.transitions - 1), 'the scrubber steps through every transition');
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), run.finalState, 'a replay opens at the end of the run');

  // the last rank's move into explode-clip: every rank is there at that moment
  const k1 = transitions.findIndex((e, k) => e.to === 'explode-clip' && e.rank === 3 && k > 0);
  await setScrubber(page, k1);
  await page.waitForSelector('body[data-current="explode-clip"]', { timeout: 5000 });
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), 'explode-clip');
  for (let r = 0; r < 4; r++) t.equal(await page.locator(badgeIn('explode-clip', r)).count(), 1, `rank ${r} is in explode-clip at transition ${k1}`);
  // one step back in time: rank 3 has not moved yet
  await page.click('#scrub-prev');
  await page.waitForSelector(badgeIn('explode-clip', 2), { timeout: 5000 });
  const prevTo = transitions[k1 - 1]!.to!;
  t.equal(await page.evaluate(() => (document.getElementById('scrub') as HTMLInputElement).value), String(k1 - 1), 'prev moves one transition back');
  t.equal(prevTo, 'explode-clip');
  t.equal(await page.locator(badgeIn(transitions[k1]!.from!, 3)).count(), 1, `rank 3 is back in its earlier state (${transitions[k1]!.from})`);
  const k2 = transitions.findIndex((e) => e.to === 'vanishing-intervention');
  await setScrubber(page, k2);
  await page.waitForSelector('body[data-current="vanishing-intervention"]', { timeout: 5000 });
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), 'vanishing-intervention', 'the scrubber changed the highlighted state');

  // click the injected fault in the log: the cursor jumps there and the diagram marks rank 3's state
  await page.selectOption('#filter-type', 'chaos.kill');
  await page.waitForFunction(() => document.querySelectorAll('#log .row').length === 1, undefined, { timeout: 5000 });
  const faultIndex = events.findIndex((e) => e.type === 'chaos.kill');
  const before = transitions.filter((e) => e.index < faultIndex);
  const rank3 = [...before].reverse().find((e) => e.rank === 3)?.to ?? 'warmup';
  await page.click(`#log .row[data-index="${faultIndex}"]`);
  await page.waitForSelector(`body[data-cursor="${faultIndex}"]`, { timeout: 5000 });
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), rank3, `the log entry links to rank 3's state (${rank3})`);
  t.equal(await page.evaluate(() => (document.getElementById('scrub') as HTMLInputElement).value), String(before.length - 1), 'the scrubber moved to the entry');

  // the restart: every rank is back in its state at the checkpoint it resumes from
  const restartIndex = events.findIndex((e) => e.type === 'job.restarted');
  await page.selectOption('#filter-type', 'job.restarted');
  await page.waitForFunction(() => document.querySelectorAll('#log .row').length === 1, undefined, { timeout: 5000 });
  await page.click(`#log .row[data-index="${restartIndex}"]`);
  await page.waitForSelector(`body[data-cursor="${restartIndex}"]`, { timeout: 5000 });
  const atCheckpoint = [...transitions].reverse().find((e) => e.index < restartIndex && e.step! <= run.resumedAt)?.to ?? 'warmup';
  const lastBefore = [...transitions].reverse().find((e) => e.index < restartIndex)!.to!;
  t.not(atCheckpoint, lastBefore, 'the synthetic run changed state between the checkpoint and the fault');
  for (let r = 0; r < 4; r++) t.equal(await page.locator(badgeIn(atCheckpoint, r)).count(), 1, `rank ${r} resumes in ${atCheckpoint} (checkpoint ${run.resumedAt})`);

  // a transition entry: its target state is marked
  await page.selectOption('#filter-type', 'rank.policy.transition');
  await page.fill('#filter-text', 'late-stage');
  await page.waitForFunction((n) => document.getElementById('log-count')!.textContent!.startsWith(`(${n} of`), transitions.filter((e) => e.to === 'late-stage' || JSON.stringify(e).includes('late-stage')).length, { timeout: 5000 });
  await page.click('#log .row >> nth=0');
  const firstLate = transitions.find((e) => e.to === 'late-stage')!;
  await page.waitForSelector(`body[data-cursor="${firstLate.index}"]`, { timeout: 5000 });
  t.equal(await page.getAttribute('#diagram g.state.current', 'data-state'), 'late-stage');
  await page.waitForSelector('#diagram .edge.firing[data-target^="policy.late-stage"]', { timeout: 5000 });
  t.pass('jumping to a transition highlights its edge');
  t.same(errors, [], 'no console errors');
});

t.test('100,000 events: the page loads, renders only a window of log rows and stays responsive', { skip }, async (t) => {
  const dir = await tempDir(t);
  const run = await writeSyntheticRun(dir, { events: 100_000, world: 8 });
  const l0 = performance.now();
  const server = await startVizServer({ runDir: dir, logger });
  const serverMs = performance.now() - l0;
  t.teardown(() => server.close());
  const t0 = performance.now();
  const { page, errors, close } = await openPage(await getBrowser(), server.url, 120_000);
  t.teardown(close);
  const loadMs = performance.now() - t0;
  t.match(await page.textContent('#counts'), new RegExp(`^${run.events} events · ${run.transitions} transitions`), 'every event is in the page');
  const rows = await page.locator('#log .row').count();
  t.ok(rows > 5 && rows <= 80, `the log renders a window of rows, not all of them (${rows} of ${run.events})`);

  // scroll to the middle: the rows there are rendered, still only a window of them
  const scrolled = await page.evaluate(async () => {
    const log = document.getElementById('log')!;
    const a = performance.now();
    log.scrollTop = log.scrollHeight / 2;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const idx = [...log.querySelectorAll('.row')].map((r) => Number((r as HTMLElement).dataset.index));
    return { ms: performance.now() - a, min: Math.min(...idx), max: Math.max(...idx), n: idx.length };
  });
  t.ok(scrolled.min < run.events / 2 && scrolled.max > run.events / 2 - 100, `mid-log rows rendered (${scrolled.min}..${scrolled.max})`);
  t.ok(scrolled.n <= 80, `still a window after scrolling (${scrolled.n} rows)`);

  // click an entry mid-log: the whole page (diagram, cluster, timeline, plots) follows
  const target = Number(await page.getAttribute('#log .row >> nth=20', 'data-index'));
  const c0 = performance.now();
  await page.click('#log .row >> nth=20');
  await page.waitForSelector(`body[data-cursor="${target}"]`, { timeout: 30_000 });
  const clickMs = performance.now() - c0;

  const f0 = performance.now();
  await page.fill('#filter-text', 'chaos.kill');
  await page.waitForFunction(() => document.getElementById('log-count')!.textContent!.startsWith('(1 of'), undefined, { timeout: 30_000 });
  const filterMs = performance.now() - f0;

  const s0 = performance.now();
  await setScrubber(page, Math.floor(run.transitions / 3));
  await page.waitForFunction((k) => (document.getElementById('scrub') as HTMLInputElement).value === String(k), Math.floor(run.transitions / 3), { timeout: 30_000 });
  const scrubMs = performance.now() - s0;
  // the longest main-thread stall during a burst of scrubbing (50 moves)
  const stall = await page.evaluate(async (n) => {
    const el = document.getElementById('scrub') as HTMLInputElement;
    let worst = 0;
    for (let k = 0; k < 50; k++) {
      const a = performance.now();
      el.value = String(Math.floor((k * n) / 50));
      el.dispatchEvent(new Event('input', { bubbles: true }));
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      worst = Math.max(worst, performance.now() - a);
    }
    return worst;
  }, run.transitions);
  const timings = await page.evaluate(() => (window as unknown as { __viz: { timings: Record<string, number> } }).__viz.timings);
  t.comment(
    `100k replay (2 shared cores, noisy): server read ${run.events} events + ${run.metricsRows} metrics rows in ${serverMs.toFixed(0)} ms; page ready ${loadMs.toFixed(0)} ms (${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))}); ` +
      `scroll ${scrolled.ms.toFixed(0)} ms, click->update ${clickMs.toFixed(0)} ms, filter ${filterMs.toFixed(0)} ms (incl. 120 ms debounce), scrub ${scrubMs.toFixed(0)} ms, worst scrub frame ${stall.toFixed(0)} ms`,
  );
  // generous bounds: they catch a page that re-renders all rows or replays all events per action,
  // not a slow machine
  t.ok(clickMs < 5000, `a click updates the page within 5 s (${clickMs.toFixed(0)} ms)`);
  t.ok(filterMs < 5000, `filtering 100k events within 5 s (${filterMs.toFixed(0)} ms)`);
  t.ok(stall < 2000, `no scrub step stalls the page for 2 s (worst ${stall.toFixed(0)} ms)`);
  const shot = await screenshot(page, 'replay-100k.png');
  t.ok((await stat(shot)).size > 20_000, `screenshot saved: ${shot}`);
  t.same(errors, [], 'no console errors');
});

t.test('at 1600x1000 the rank states and the loss fit the screen; eval and preference metrics get charts; eval_results.json is listed', { skip }, async (t) => {
  const dir = await tempDir(t);
  const events: Record<string, unknown>[] = [
    { type: 'job.state', state: 'running', attempt: 0 },
    { type: 'job.started', world: 4, hosts: [{ host: 'node-a', slots: 2 }, { host: 'node-b', slots: 2 }], url: 'tcp://127.0.0.1:1', bound: '127.0.0.1', jobId: 'j' },
  ];
  for (let r = 0; r < 4; r++) events.push({ type: 'rank.spawn', rank: r, incarnation: 0, host: r < 2 ? 'node-a' : 'node-b' });
  const rows: Record<string, number | string>[] = [];
  for (let s = 1; s <= 40; s++) {
    rows.push({ step: s, loss: 3 - s / 20, grad_mean: 1e-3, grad_norm: 1, lr: 1e-4, tokens_per_s: 900, 'rewards/accuracies': s / 40, 'rewards/margins': s / 10, 'rewards/chosen': s / 20, 'rewards/rejected': -s / 20, policy_state: 'normal' });
    events.push({ type: 'job.step', step: s, loss: 3 - s / 20, policy_state: 'normal' });
    if (s % 10 === 0) {
      const metrics = { eval_loss: 3.2 - s / 25, 'eval_rewards/accuracies': s / 45, epoch: s / 40 };
      rows.push({ step: s, ...metrics, restarts: 0 });
      events.push({ type: 'job.eval', step: s, metrics });
    }
  }
  await appendFile(join(dir, 'events.ndjson'), events.map((e, i) => JSON.stringify({ ...e, time: new Date(1e12 + i).toISOString(), t: i })).join('\n') + '\n');
  await appendFile(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  await appendFile(join(dir, 'eval_results.json'), JSON.stringify({ epoch: 1, eval_loss: 1.6, 'eval_rewards/accuracies': 0.9 }));
  const server = await startVizServer({ runDir: dir, logger });
  t.teardown(() => server.close());
  const { page, errors, close } = await openPage(await getBrowser(), server.url, 60_000, { width: 1600, height: 1000 });
  t.teardown(close);
  await page.waitForSelector('#plots .plot[data-series="eval_loss"] canvas', { timeout: 10_000 });
  const bottom = (sel: string) => page.evaluate((s) => document.querySelector(s)!.getBoundingClientRect().bottom, sel);
  for (const sel of ['#diagram svg', '#cluster .rank[data-rank="3"]', '#timeline', '#plots .plot[data-series="loss"]']) {
    const b = await bottom(sel);
    t.ok(b <= 1000, `${sel} ends at ${Math.round(b)} px: in view without scrolling`);
  }
  const svg = await page.evaluate(() => {
    const s = document.querySelector('#diagram svg')!;
    const [, , w, h] = s.getAttribute('viewBox')!.split(' ').map(Number);
    return { w: w!, h: h!, box: s.getBoundingClientRect().height };
  });
  t.ok(svg.box < svg.h, `the diagram (${svg.w} x ${svg.h} of content) is scaled down to ${Math.round(svg.box)} px high`);
  const series = await page.$$eval('#plots .plot', (ps) => ps.map((p) => (p as HTMLElement).dataset.series));
  t.same(series, ['loss', 'grad_mean', 'grad_norm', 'lr', 'tokens_per_s', 'eval_loss', 'rewards/accuracies', 'rewards/margins', 'rewards/chosen', 'eval_rewards/accuracies'], 'the eval and preference charts follow the five training ones');
  const evalX = await page.evaluate(() => {
    const app = (window as unknown as { __viz: { plots: { evalCols: { step: number[] }; cols: { step: number[] } } } }).__viz;
    return { eval: app.plots.evalCols.step, train: app.plots.cols.step.length };
  });
  t.same(evalX.eval, [10, 20, 30, 40], 'eval rows keep their own steps');
  t.equal(evalX.train, 40, 'and do not cut the training rows (a step repeated by an eval row is not a restart)');
  t.match(await page.textContent('#plots .results'), /eval_loss 1\.6/, 'eval_results.json is listed');
  const shot = await screenshot(page, 'layout-1600x1000.png');
  t.comment(`screenshot: ${shot}`);
  t.same(errors, [], 'no console errors');
});
