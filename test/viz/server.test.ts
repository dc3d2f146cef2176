/**
 * The visualizer's server without a browser: its assets (and nothing else), the chart and run
 * data APIs, path traversal in many encodings, DNS-rebinding Host headers, the server-sent-events
 * stream (live events, Last-Event-ID resume, reset after eviction, heartbeats, no leaked
 * listeners), following a growing run directory, and the `viz` command line.
 */
import t, { type Test } from 'tap';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventLog } from '../../src/actors/events/EventLog.js';
import { exportChart } from '../../src/statecharts/exportChart.js';
import { trainingPolicyMachine } from '../../src/statecharts/trainingPolicy.js';
import { createLogger, type LogRecord } from '../../src/util/Logger.js';
import { startVizServer, type VizServer } from '../../src/viz/startVizServer.js';
import { clientFiles } from '../../src/viz/assets.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { rawRequest, SseReader } from './helpers/http.js';
import { writeSyntheticRun } from './helpers/syntheticRun.js';

const logs: LogRecord[] = [];
const logger = createLogger('debug', (r) => logs.push(r));

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'viz-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: Test, o: Parameters<typeof startVizServer>[0]): Promise<VizServer> {
  const s = await startVizServer(o);
  t.teardown(() => s.close());
  return s;
}

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('serves the page, its own scripts and the elkjs/uPlot builds, and nothing else', async (t) => {
  const s = await serve(t, { logger });
  const page = await fetch(s.url);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/, 'the page may run only its own scripts');
  const html = await page.text();
  for (const ref of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
    const r = await fetch(new URL(ref[1]!, s.url));
    t.equal(r.status, 200, `${ref[1]} is served`);
    await r.arrayBuffer();
  }
  for (const f of clientFiles) {
    const r = await fetch(new URL(`/assets/${f}`, s.url));
    t.equal(r.status, 200, `client file ${f}`);
    t.equal(r.headers.get('x-content-type-options'), 'nosniff');
    t.match(r.headers.get('content-type'), f.endsWith('.js') ? /text\/javascript/ : f.endsWith('.css') ? /text\/css/ : /text\/html/);
    await r.arrayBuffer();
  }
  const elk = await fetch(new URL('/assets/elk.bundled.js', s.url));
  t.ok((await elk.text()).length > 100_000, 'the elkjs browser build comes from node_modules');
  const head = await rawRequest(s.port, '/assets/main.js', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body, '', 'HEAD has no body');
  t.equal((await rawRequest(s.port, '/', { method: 'POST' })).status, 405);
  t.equal((await rawRequest(s.port, '/assets/nope.js')).status, 404);
  t.equal((await rawRequest(s.port, '/assets/package.json')).status, 404, 'a real file outside the table is not served');
  t.equal((await rawRequest(s.port, '/api/nope')).status, 404);
});

t.test('path traversal is refused in every encoding', async (t) => {
  const s = await serve(t, { logger });
  const pkg = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  const attempts = [
    '/assets/../../etc/passwd',
    '/assets/../../../../../../etc/passwd',
    '/assets/../package.json',
    '/assets/%2e%2e/%2e%2e/etc/passwd',
    '/assets/%2E%2E%2Fpackage.json',
    '/assets/..%2f..%2fpackage.json',
    '/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/assets/%252e%252e/%252e%252e/package.json',
    '/assets/..%5c..%5cpackage.json',
    '/assets/..\\..\\package.json',
    '/assets/index.html%00.js',
    '/assets/main.js%00',
    '/assets/%c0%ae%c0%ae/package.json',
    '/assets/%ZZ',
    '/assets//etc/passwd',
    '/assets/....//package.json',
    '//etc/passwd',
    '/etc/passwd',
    '/%2e%2e/package.json',
    '/./package.json',
    '/assets/./main.js',
    'http://127.0.0.1/../package.json',
    '/package.json',
    '/src/viz/startVizServer.ts',
  ];
  for (const a of attempts) {
    const r = await rawRequest(s.port, a);
    t.ok(r.status === 400 || r.status === 404, `${a} -> ${r.status}`);
    t.notOk(r.body.includes('"devDependencies"') || r.body.includes(pkg.slice(0, 40)) || r.body.includes('root:'), `${a} leaks no file`);
  }
  t.equal((await rawRequest(s.port, '/assets/../../etc/passwd')).status, 400, 'a literal .. is a bad request');
  t.equal((await rawRequest(s.port, '/assets/%2e%2e/%2e%2e/etc/passwd')).status, 400, 'an encoded .. is a bad request');
  t.equal((await rawRequest(s.port, '/assets/index.html%00.js')).status, 400, 'NUL is a bad request');
});

t.test('a loopback server answers only to loopback Host names (DNS rebinding)', async (t) => {
  const s = await serve(t, { logger });
  t.equal((await rawRequest(s.port, '/api/chart', { host: 'evil.example' })).status, 403);
  t.equal((await rawRequest(s.port, '/api/chart', { host: `evil.example:${s.port}` })).status, 403);
  t.equal((await rawRequest(s.port, '/api/chart', { host: `127.0.0.1:${s.port + 1}` })).status, 403, 'another port is another origin');
  t.equal((await rawRequest(s.port, '/api/chart', { host: `localhost:${s.port}` })).status, 200);
  t.equal((await rawRequest(s.port, '/api/chart', { host: `[::1]:${s.port}` })).status, 200);
});

t.test('chart, events and metrics of a replayed run', async (t) => {
  const dir = await tempDir(t);
  const run = await writeSyntheticRun(dir, { events: 3000, world: 4 });
  // a torn or foreign line must not break the replay
  await appendFile(join(dir, 'events.ndjson'), 'not json\n{"no":"type"}\n');
  const s = await serve(t, { runDir: dir, logger });
  const chart = await (await fetch(new URL('/api/chart', s.url))).json();
  t.same(chart, JSON.parse(JSON.stringify(exportChart(trainingPolicyMachine))), 'the chart is the machine definition');
  const info = await (await fetch(new URL('/api/info', s.url))).json();
  t.equal(info.mode, 'replay');
  t.equal(info.events.next, run.events, 'every event line is served');
  t.equal(info.skipped.events, 2, 'two malformed lines skipped');
  const all = await (await fetch(new URL('/api/events', s.url))).json();
  t.equal(all.items.length, run.events);
  t.equal(all.items.filter((e: { type: string }) => e.type === 'rank.policy.transition').length, run.transitions);
  const tail = await (await fetch(new URL('/api/events?since=2990', s.url))).json();
  t.same([tail.first, tail.next, tail.items.length], [2990, run.events, run.events - 2990]);
  t.same(tail.items[0], all.items[2990], 'since=N starts at event N');
  t.equal((await rawRequest(s.port, '/api/events?since=-1')).status, 400);
  t.equal((await rawRequest(s.port, '/api/events?since=abc')).status, 400);
  const rows = await (await fetch(new URL('/api/metrics', s.url))).json();
  t.equal(rows.items.length, run.metricsRows, 'one metrics row per step run (re-run steps twice)');
  const cols = await (await fetch(new URL('/api/metrics?fields=step,grad_mean,missing', s.url))).json();
  t.equal(cols.columns.step.length, run.metricsRows);
  t.equal(cols.columns.grad_mean[10], rows.items[10].grad_mean);
  t.equal(cols.columns.missing[0], null, 'an absent field is null');
  t.equal((await rawRequest(s.port, '/api/metrics?fields=a;b')).status, 400);
});

t.test('live events stream over SSE and resume with Last-Event-ID without loss or repeats', async (t) => {
  const live = new EventLog(null, () => 0, logger);
  live.emit({ type: 'job.state', state: 'starting' });
  live.emit({ type: 'job.started', world: 2, hosts: [{ host: 'a', slots: 2 }] });
  const s = await serve(t, { live, logger, heartbeatMs: 60 });
  const a = new SseReader(s.port, '/api/stream?since=0');
  t.teardown(() => a.close());
  await a.until(() => a.messages.length === 2, 5000, 'the two recent events');
  t.same(a.messages.map((m) => m.id), ['0', '1'], 'events recorded before the server started are replayed');
  t.equal(a.status, 200);
  live.emit({ type: 'rank.policy.transition', rank: 1, step: 3, from: 'warmup', to: 'normal' });
  await a.until(() => a.messages.length === 3, 5000, 'a live event');
  t.same(JSON.parse(a.messages[2]!.data!).to, 'normal');
  await a.until(() => a.comments >= 3, 5000, 'heartbeats');
  t.equal(s.streams, 1);
  a.close(); // the tab goes away
  await waitFor(() => s.streams === 0, 5000, 'the stream to be dropped');
  // events keep coming while the browser is away
  for (let k = 0; k < 5; k++) live.emit({ type: 'job.step', step: k + 1 });
  const b = new SseReader(s.port, '/api/stream', { 'last-event-id': '2' });
  t.teardown(() => b.close());
  await b.until(() => b.messages.length === 5, 5000, 'the missed events');
  t.same(b.messages.map((m) => m.id), ['3', '4', '5', '6', '7'], 'resumes right after the last id it saw');
  live.emit({ type: 'job.step', step: 6 });
  await b.until(() => b.messages.length === 6, 5000, 'live after resume');
  t.equal(b.messages[5]!.id, '8');
  // many reconnects leave no listeners behind
  for (let k = 0; k < 20; k++) {
    const c = new SseReader(s.port, '/api/stream', { 'last-event-id': '7' });
    await c.until(() => c.messages.length === 1, 5000, 'a resumed stream');
    c.close();
  }
  b.close();
  await waitFor(() => s.streams === 0, 5000, 'all streams to be dropped');
  t.equal(s.streams, 0, 'no stream outlives its browser');
});

t.test('a resume point older than the kept events gets a reset', async (t) => {
  const live = new EventLog(null, () => 0, logger);
  const s = await serve(t, { live, logger, capacity: 16 });
  for (let k = 0; k < 40; k++) live.emit({ type: 'job.step', step: k });
  const r = new SseReader(s.port, '/api/stream', { 'last-event-id': '3' });
  t.teardown(() => r.close());
  await r.until(() => r.messages.some((m) => m.event === 'reset'), 5000, 'a reset');
  t.equal(r.messages[0]!.event, 'reset', 'the browser is told to reload');
  const { first, next } = JSON.parse(r.messages[0]!.data!) as { first: number; next: number };
  t.ok(first > 4 && first <= 24, `oldest kept event ${first}`);
  t.equal(next, 40);
  await waitFor(() => s.streams === 0, 5000, 'the stream to end');
  t.equal(r.messages.length, 1, 'nothing else: the page reloads through /api/events');
  const ok = new SseReader(s.port, '/api/stream', { 'last-event-id': String(first) });
  t.teardown(() => ok.close());
  await ok.until(() => ok.messages.length === 40 - first - 1, 5000, 'the kept events');
  t.equal(ok.messages[0]!.id, String(first + 1), 'a resume point still held resumes normally');
});

t.test('follow mode picks up lines appended to events.ndjson and metrics.jsonl', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'events.ndjson'), JSON.stringify({ type: 'job.state', time: 'x', t: 0, state: 'running' }) + '\n');
  const s = await serve(t, { runDir: dir, follow: true, pollMs: 50, logger });
  const r = new SseReader(s.port, '/api/stream?since=0');
  t.teardown(() => r.close());
  await r.until(() => r.messages.length === 1, 5000, 'the first event');
  // a writer mid-line: the half line waits for its newline
  const line = JSON.stringify({ type: 'rank.policy.transition', time: 'x', t: 1, rank: 0, step: 1, from: 'warmup', to: 'normal' });
  await appendFile(join(dir, 'events.ndjson'), line.slice(0, 20));
  await new Promise((res) => setTimeout(res, 200));
  t.equal(r.messages.length, 1, 'a partial line is not an event');
  await appendFile(join(dir, 'events.ndjson'), line.slice(20) + '\n');
  await r.until(() => r.messages.length === 2, 5000, 'the appended event');
  t.equal(JSON.parse(r.messages[1]!.data!).to, 'normal');
  await appendFile(join(dir, 'metrics.jsonl'), JSON.stringify({ step: 1, loss: 2 }) + '\n');
  await new Promise((res) => setTimeout(res, 200));
  const m = await (await fetch(new URL('/api/metrics', s.url))).json();
  t.equal(m.items.length, 1);
});

t.test('close() ends open streams, frees the port and is safe to call twice', async (t) => {
  const live = new EventLog(null, () => 0, logger);
  const s = await startVizServer({ live, logger });
  const r = new SseReader(s.port, '/api/stream');
  await waitFor(() => s.streams === 1, 5000, 'the stream');
  await Promise.all([s.close(), s.close()]);
  await s.close();
  t.equal(s.streams, 0);
  r.close();
  await t.rejects(fetch(s.url), 'nothing listens after close');
  live.emit({ type: 'job.step', step: 1 }); // no listener of a closed server may throw
});

t.test('`viz` command line: usage errors exit 2, --replay serves until Ctrl-C (exit 130)', async (t) => {
  const none = runCli(['viz']);
  t.equal(none.status, 2, none.stderr);
  t.match(none.stderr, /--replay RUN_DIR/);
  const missing = runCli(['viz', '--replay', '/nonexistent/run']);
  t.equal(missing.status, 2);
  t.match(missing.stderr, /does not exist/);
  const badPort = runCli(['viz', '--replay', '.', '--port', 'x']);
  t.equal(badPort.status, 2);
  const dir = await tempDir(t);
  await writeSyntheticRun(dir, { events: 500, world: 2 });
  const child = spawnCli(['viz', '--replay', dir, '--port', '0', '--quiet']);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => /visualizer: http:\/\/127\.0\.0\.1:\d+\//.test(out), 20_000, 'the URL');
  const url = /visualizer: (\S+)/.exec(out)![1]!;
  const info = await (await fetch(new URL('/api/info', url))).json();
  t.equal(info.mode, 'replay');
  t.ok(info.events.next >= 500);
  const code = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  child.kill('SIGINT');
  t.equal(await code, 130, 'Ctrl-C exits 130');
});

t.test('a real 2-rank job (coordinator, agent, rank processes) streams its events live', async (t) => {
  const { Coordinator } = await import('../../src/actors/coordinator/index.js');
  const { LocalLauncher } = await import('../../src/actors/launchers/LocalLauncher.js');
  const { resolveJobDocument } = await import('../../src/config/resolveJobDocument.js');
  const { cliEntry } = await import('../../src/util/packageRoot.js');
  const dir = await tempDir(t);
  const jobLogger = createLogger('warn');
  const config = {
    output_dir: dir,
    max_steps: 6,
    save_steps: 3,
    synthetic: { step_ms: 20 },
    cluster: { heartbeat_interval_s: 0.5, heartbeat_miss_limit: 6, max_restarts: 1, restart_window_s: 60, shutdown_grace_s: 1, rendezvous_timeout_s: 30, step_timeout_s: 30 },
  };
  const coord = new Coordinator({ job: resolveJobDocument(config, { name: 'job.yaml', worldSize: 2 }), hosts: [{ host: 'localhost', slots: 2 }], launcher: new LocalLauncher(cliEntry(), jobLogger), logger: jobLogger, workload: 'synthetic' });
  const s = await serve(t, { live: coord.events, runDir: dir, logger });
  const r = new SseReader(s.port, '/api/stream?since=0');
  t.teardown(() => r.close());
  const result = await coord.run();
  t.equal(result.ok, true, String(result.reason));
  const types = () => r.messages.map((m) => JSON.parse(m.data!).type as string);
  await r.until(() => types().includes('rank.done') && types().filter((x) => x === 'job.step').length === 6, 10_000, 'the job events');
  t.same(r.messages.map((m) => Number(m.id)), r.messages.map((_, i) => i), 'ids are consecutive from 0');
  const started = r.messages.map((m) => JSON.parse(m.data!)).find((e) => e.type === 'job.started');
  t.equal(started.world, 2);
  t.same(started.hosts.map((h: { host: string }) => h.host), ['localhost']);
  t.ok(types().includes('rank.joined') && types().includes('checkpoint.committed'), types().join(','));
  const m = await (await fetch(new URL('/api/metrics?fields=step,loss', s.url))).json();
  t.same(m.columns.step, [1, 2, 3, 4, 5, 6], 'metrics.jsonl is read as the job appends it');
});
