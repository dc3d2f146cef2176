/**
 * `bench control`: the control plane's cost.
 * 1. Round trip, one message out and one back, between this process (DEALER) and an echo process
 *    (ROUTER), measured in alternating blocks in the same run for: our endpoints (frame codec +
 *    validation + CURVE + ZAP + send queues), raw zeromq DEALER/ROUTER with CURVE, and raw zeromq
 *    without. Figures: p50/p99 in microseconds and ratio_p50 = ours / raw (the target is <= 2).
 * 2. Load: the real Coordinator (in this process) supervising `--ranks` simulated ranks that
 *    heartbeat at 10 Hz (interval 0.1 s, miss limit 3) for `--seconds`. The ranks live in
 *    `--workers` processes (bench/controlPeer.ts `sim`), each a simulated node agent holding one
 *    DEALER (own CURVE connection and routing id) per rank, every rank beating on its own timer.
 *    Figures: the coordinator process's CPU share (user+sys over wall, zeromq's I/O thread
 *    included), heartbeats received vs expected, late heartbeats (gap > 1.5 and > 2 intervals),
 *    the largest gap, and false suspicions (any rank or agent declared lost: there are no faults).
 * Never leaves a helper process behind; prints figures, never asserts on them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dealer } from 'zeromq';
import { Coordinator } from '../src/actors/coordinator/index.js';
import type { Launcher } from '../src/actors/launchers/Launcher.js';
import { resolveJobDocument } from '../src/config/resolveJobDocument.js';
import { ProcessChild } from '../src/actors/ProcessChild.js';
import { encodeFrame } from '../src/transport/FrameCodec.js';
import { createJobKeys, writeJobKeys } from '../src/transport/keys.js';
import { DealerEndpoint } from '../src/transport/ZmqEndpoints.js';
import { createLogger } from '../src/util/Logger.js';
import type { Benchmark } from './types.js';

const peerScript = fileURLToPath(new URL('./controlPeer.js', import.meta.url));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50_us: +percentile(s, 50).toFixed(1), p99_us: +percentile(s, 99).toFixed(1), n: s.length };
}

async function roundTrips(samples: number, log: (l: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'ua-bench-control-'));
  const keyFile = join(dir, 'job.key');
  const keys = createJobKeys();
  await writeJobKeys(keyFile, keys);
  const peer = spawn(process.execPath, [peerScript, 'echo', keyFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const cleanup = () => {
    if (peer.exitCode === null && peer.pid) process.kill(peer.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  try {
    const urls = await new Promise<string[]>((resolve, reject) => {
      let out = '';
      peer.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /^ready (\S+) (\S+) (\S+)$/m.exec(out);
        if (m) resolve([m[1]!, m[2]!, m[3]!]);
      });
      peer.once('exit', (c) => reject(new Error(`echo peer exited with ${c}`)));
    });
    const [rawUrl, rawCurveUrl, oursUrl] = urls as [string, string, string];
    const raw = new Dealer({ linger: 0 });
    raw.connect(rawUrl);
    const rawCurve = new Dealer({ linger: 0, curveServerKey: keys.server.publicKey, curvePublicKey: keys.client.publicKey, curveSecretKey: keys.client.secretKey });
    rawCurve.connect(rawCurveUrl);
    const ours = new DealerEndpoint({ keys, logger: createLogger('warn'), role: 'rank', index: 0, incarnation: 0 });
    let wake: (() => void) | null = null;
    ours.onFrame(() => wake?.());
    ours.connect(oursUrl);
    // the same bytes as our heartbeat frame, so the raw paths move an identical payload
    const payload = encodeFrame({ type: 'peer.heartbeat', role: 'rank', sender: 0, incarnation: 0, seq: 0, body: { step: 1, phase: 'training', busy: true } });

    const rawOnce = async (d: Dealer) => {
      const t0 = process.hrtime.bigint();
      await d.send(payload);
      await d.receive();
      return Number(process.hrtime.bigint() - t0) / 1000;
    };
    let step = 0;
    const oursOnce = async () => {
      const t0 = process.hrtime.bigint();
      const got = new Promise<void>((r) => (wake = r));
      ours.send('coord', 'peer.heartbeat', { step: step++, phase: 'training', busy: true });
      await got;
      return Number(process.hrtime.bigint() - t0) / 1000;
    };
    const res = { ours: [] as number[], raw: [] as number[], raw_curve: [] as number[] };
    const run = async (n: number, keep: boolean) => {
      for (let i = 0; i < n; i++) {
        const a = await oursOnce();
        const b = await rawOnce(raw);
        const c = await rawOnce(rawCurve);
        if (keep) {
          res.ours.push(a);
          res.raw.push(b);
          res.raw_curve.push(c);
        }
      }
    };
    await run(Math.min(500, samples), false); // warm-up: connections, CURVE handshakes, JIT
    await run(samples, true);
    const out = { ours: summary(res.ours), raw: summary(res.raw), raw_curve: summary(res.raw_curve) };
    const ratio50 = out.ours.p50_us / out.raw.p50_us;
    log(`round trip (${samples} each, interleaved): ours p50 ${out.ours.p50_us} us p99 ${out.ours.p99_us} us | raw zeromq p50 ${out.raw.p50_us} us p99 ${out.raw.p99_us} us | raw zeromq+CURVE p50 ${out.raw_curve.p50_us} us p99 ${out.raw_curve.p99_us} us`);
    log(`ratio p50 ours/raw = ${ratio50.toFixed(2)} (target <= 2.0); ours/raw+CURVE = ${(out.ours.p50_us / out.raw_curve.p50_us).toFixed(2)}`);
    raw.close();
    rawCurve.close();
    await ours.close();
    peer.stdin!.end();
    await new Promise((r) => (peer.exitCode !== null ? r(null) : peer.once('exit', r)));
    return { ...out, ratio_p50: +ratio50.toFixed(3), ratio_p99: +(out.ours.p99_us / out.raw.p99_us).toFixed(3) };
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/** Starts each simulated node agent as a worker process. */
class SimLauncher implements Launcher {
  readonly children: ProcessChild[] = [];
  async startAgent(a: { hostIndex: number; slots: number; joinUrl: string; keyFile: string }) {
    const child = new ProcessChild({
      command: process.execPath,
      args: [peerScript, 'sim', a.joinUrl, a.keyFile, String(a.hostIndex), String(a.slots)],
      graceMs: 3000,
      onOutput: (_s, chunk) => process.stderr.write(chunk),
    });
    this.children.push(child);
    return child;
  }
}

async function load(ranks: number, workers: number, seconds: number, log: (l: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'ua-bench-load-'));
  const intervalMs = 100;
  const per = Math.ceil(ranks / workers);
  const hosts = Array.from({ length: workers }, (_, i) => ({ host: `sim-${i}`, slots: Math.min(per, ranks - i * per) })).filter((h) => h.slots > 0);
  const launcher = new SimLauncher();
  const lastBeat = new Map<string, number>();
  let measuring = false;
  let received = 0;
  let late150 = 0;
  let late200 = 0;
  let maxGap = 0;
  let allBeating!: () => void;
  const beating = new Promise<void>((r) => (allBeating = r));
  const coord = new Coordinator({
    job: resolveJobDocument(
      { output_dir: dir, cluster: { heartbeat_interval_s: intervalMs / 1000, heartbeat_miss_limit: 3, step_timeout_s: 600, rendezvous_timeout_s: 120, max_restarts: 0, restart_window_s: 600, shutdown_grace_s: 1 } },
      { name: 'bench-control.yaml' },
    ),
    hosts,
    launcher,
    logger: createLogger('error'),
    workload: 'none',
    onFrame: (f, from) => {
      if (f.type !== 'peer.heartbeat' || f.role !== 'rank') return;
      const now = performance.now();
      const prev = lastBeat.get(from);
      lastBeat.set(from, now);
      if (lastBeat.size === ranks && prev === undefined) allBeating();
      if (!measuring) return;
      received++;
      if (prev !== undefined) {
        const gap = now - prev;
        if (gap > 1.5 * intervalMs) late150++;
        if (gap > 2 * intervalMs) late200++;
        if (gap > maxGap) maxGap = gap;
      }
    },
  });
  const suspicions: string[] = [];
  coord.events.subscribe((e) => {
    if (e.type === 'job.rank.failed') suspicions.push(`${e.type} ${e.rank} ${e.reason}`);
    else if (e.type === 'job.failed' && e.kind !== 'interrupted') suspicions.push(`${e.type}  ${e.reason}`);
  });
  let ended = false;
  const done = coord.run().finally(() => (ended = true));
  try {
    const t0 = performance.now();
    const early = (phase: string) => done.then((r) => `the job ended during ${phase}: ${r.reason}`);
    const startLag = monitorEventLoopDelay({ resolution: 5 });
    startLag.enable();
    const startup = await Promise.race([beating.then(() => null), early('start-up')]);
    startLag.disable();
    log(`start-up: coordinator loop delay p99 ${(startLag.percentile(99) / 1e6).toFixed(1)} ms, max ${(startLag.max / 1e6).toFixed(1)} ms`);
    if (startup) suspicions.push(startup);
    else log(`load: ${ranks} simulated ranks in ${hosts.length} worker processes heartbeating at ${1000 / intervalMs} Hz (ready after ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    await new Promise((r) => setTimeout(r, 1000)); // let the first beats settle
    measuring = true;
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    const steady = startup ? null : await Promise.race([new Promise<null>((r) => setTimeout(() => r(null), seconds * 1000)), early('the measurement')]);
    if (steady) suspicions.push(steady);
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - w0;
    lag.disable();
    measuring = false;
    const share = (cpu.user + cpu.system) / 1000 / wall;
    const expected = Math.round((ranks * wall) / intervalMs);
    if (!ended) coord.interrupt();
    await done;
    const out = {
      ranks,
      workers: hosts.length,
      hz: 1000 / intervalMs,
      miss_limit: 3,
      seconds: +(wall / 1000).toFixed(2),
      coordinator_cpu_share: +share.toFixed(3),
      heartbeats_received: received,
      heartbeats_expected: expected,
      late_gt_1_5_intervals: late150,
      late_gt_2_intervals: late200,
      max_gap_ms: +maxGap.toFixed(1),
      false_suspicions: suspicions.length,
      completed: !startup && !steady,
      coordinator_loop_delay_p99_ms: +(lag.percentile(99) / 1e6).toFixed(1),
      coordinator_loop_delay_max_ms: +(lag.max / 1e6).toFixed(1),
      monitor_stalled_ticks: coord.monitorStalls,
    };
    log(
      `coordinator CPU ${(share * 100).toFixed(1)}% of one core over ${out.seconds} s; heartbeats ${received}/${expected}; ` +
        `late (>150 ms gap) ${late150}, (>200 ms) ${late200}; max gap ${out.max_gap_ms} ms; false suspicions ${suspicions.length}; ` +
        `coordinator loop delay p99 ${out.coordinator_loop_delay_p99_ms} ms, max ${out.coordinator_loop_delay_max_ms} ms; stalled monitor ticks ${out.monitor_stalled_ticks}`,
    );
    for (const s of suspicions.slice(0, 5)) log(`  suspicion: ${s}`);
    return out;
  } finally {
    if (!ended) coord.interrupt();
    await done.catch(() => undefined);
    for (const c of launcher.children) if (c.alive) await c.stop('bench done');
    rmSync(dir, { recursive: true, force: true });
  }
}

export const controlBench: Benchmark = {
  options: {
    samples: { type: 'string', default: '3000' },
    ranks: { type: 'string', default: '512' },
    workers: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '10' },
  },
  async run(opts, log) {
    const roundtrip = await roundTrips(Number(opts.samples), log);
    const loadResult = await load(Number(opts.ranks), Number(opts.workers), Number(opts.seconds), log);
    log('(timings on a shared machine are noisy; the ranks and the coordinator share its cores)');
    return { bench: 'control', roundtrip, load: loadResult };
  },
};
