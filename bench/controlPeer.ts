/**
 * The far side of `bench control`, run as a separate process:
 *   echo KEYFILE            three ROUTERs that answer every message: raw zeromq (no CURVE), raw
 *                           zeromq with CURVE, and our RouterEndpoint (codec + CURVE + ZAP + send
 *                           queue). Prints `ready RAW_URL RAW_CURVE_URL OURS_URL`.
 *   sim URL KEYFILE HOST SLOTS   a simulated node agent (our DealerEndpoint) plus one raw DEALER
 *                           per slot (each its own CURVE connection and routing id, as real ranks
 *                           have) sending encoded hello/heartbeat frames at the job's interval,
 *                           each on its own timer with a random phase.
 * A benchmark helper: it never runs a workload and exits when its parent tells it or dies.
 */
import { hostname } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Dealer, Router } from 'zeromq';
import { encodeFrame } from '../src/transport/FrameCodec.js';
import { readJobKeys } from '../src/transport/keys.js';
import { DealerEndpoint, RouterEndpoint } from '../src/transport/ZmqEndpoints.js';
import { parseJobSpec } from '../src/config/parseJobSpec.js';
import { createLogger } from '../src/util/Logger.js';

const log = createLogger('warn', undefined, 'control-peer');

async function echo(keyFile: string): Promise<void> {
  const keys = await readJobKeys(keyFile);
  const raw = new Router({ linger: 0 });
  await raw.bind('tcp://127.0.0.1:*');
  const rawCurve = new Router({ linger: 0, curveServer: true, curveSecretKey: keys.server.secretKey, curvePublicKey: keys.server.publicKey });
  await rawCurve.bind('tcp://127.0.0.1:*');
  const ours = new RouterEndpoint({ keys, logger: log, zmtpHeartbeatMs: 1000 });
  ours.onFrame((f, from) => ours.send(from, 'peer.heartbeat', { step: f.type === 'peer.heartbeat' ? f.body.step : 0, phase: 'echo', busy: false }));
  const oursUrl = await ours.bind('127.0.0.1', 0);
  const loop = async (s: Router) => {
    for await (const [id, msg] of s) await s.send([id!, msg!]);
  };
  void loop(raw).catch(() => {});
  void loop(rawCurve).catch(() => {});
  process.stdout.write(`ready ${raw.lastEndpoint} ${rawCurve.lastEndpoint} ${oursUrl}\n`);
  process.stdin.resume();
  await new Promise((r) => process.stdin.once('end', r));
  raw.close();
  rawCurve.close();
  await ours.close();
}

interface SimRank {
  sock: Dealer;
  timer?: NodeJS.Timeout;
  incarnation: number;
}

async function sim(url: string, keyFile: string, hostIndex: number, slots: number): Promise<void> {
  const keys = await readJobKeys(keyFile);
  let intervalMs = 1000;
  const agent = new DealerEndpoint({ keys, logger: log, role: 'agent', index: hostIndex, incarnation: 0, zmtpHeartbeatMs: 1000 });
  const ranks = new Map<number, SimRank>();
  let agentTimer: NodeJS.Timeout | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));

  // A simulated rank is a raw zeromq DEALER with the job's CURVE key and the rank's routing id,
  // sending real, encoded frames (hello, then heartbeats on its own timer). It never reads: the
  // coordinator's heartbeats to it are dropped at a small receive high-water mark, so the
  // simulator spends its CPU on what the coordinator sees, not on decoding what it ignores.
  const startRank = (rank: number, incarnation: number) => {
    const sock = new Dealer({
      linger: 0,
      routingId: `rank:${rank}`,
      curveServerKey: keys.server.publicKey,
      curvePublicKey: keys.client.publicKey,
      curveSecretKey: keys.client.secretKey,
      receiveHighWaterMark: 16,
    });
    let seq = 0;
    let busy = false;
    const frame = (type: 'peer.hello' | 'peer.heartbeat', body: Record<string, unknown>) =>
      encodeFrame({ type, role: 'rank', sender: rank, incarnation, seq: seq++, body });
    const send = (buf: Buffer) => {
      if (busy) return; // one send in flight per socket; a beat that cannot go now is simply late
      busy = true;
      sock.send(buf).then(
        () => (busy = false),
        () => (busy = false),
      );
    };
    const entry: SimRank = { sock, incarnation };
    ranks.set(rank, entry);
    sock.connect(url);
    send(frame('peer.hello', { role: 'rank', host: hostname(), pid: process.pid, rank, incarnation }));
    setTimeout(() => {
      if (!ranks.has(rank)) return;
      const beat = () => send(frame('peer.heartbeat', { step: 0, phase: 'training', busy: false }));
      beat();
      entry.timer = setInterval(beat, intervalMs);
    }, Math.random() * intervalMs);
    agent.send('coord', 'agent.rank.started', { rank, incarnation, pid: process.pid });
  };
  const stopRank = async (rank: number) => {
    const r = ranks.get(rank);
    if (!r) return;
    ranks.delete(rank);
    clearInterval(r.timer);
    r.sock.close();
    agent.send('coord', 'agent.rank.exited', { rank, incarnation: r.incarnation, pid: process.pid, code: 0, stderrTail: '' });
  };

  agent.onFrame((f) => {
    switch (f.type) {
      case 'peer.welcome': {
        intervalMs = parseJobSpec(f.body.job).cluster.heartbeatIntervalMs;
        clearInterval(agentTimer);
        agentTimer = setInterval(() => agent.send('coord', 'peer.heartbeat', { step: 0, phase: 'agent', busy: false }), intervalMs);
        break;
      }
      case 'agent.spawn': {
        // real ranks start as separate processes over a few seconds: spread the CURVE handshakes
        const rank = f.body.rank as number;
        const inc = f.body.incarnation as number;
        setTimeout(() => startRank(rank, inc), Math.random() * 5000);
        break;
      }
      case 'agent.stop':
        void stopRank(f.body.rank as number);
        break;
      case 'job.command':
        if (f.body.command === 'shutdown') finish();
        break;
      default:
        break;
    }
  });
  agent.connect(url);
  agent.send('coord', 'peer.hello', { role: 'agent', host: `sim-${hostIndex}`, pid: process.pid, slots });
  process.once('SIGTERM', finish);
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  await finished;
  lag.disable();
  // for the benchmark's log: a starved simulator makes its ranks' heartbeats late
  process.stderr.write(`sim worker ${hostIndex}: ${slots} ranks, loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms\n`);
  clearInterval(agentTimer);
  await Promise.all([...ranks.keys()].map(stopRank));
  await agent.flush(500);
  await agent.close();
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'echo') await echo(args[0]!);
else if (mode === 'sim') await sim(args[0]!, args[1]!, Number(args[2]), Number(args[3]));
else {
  process.stderr.write('usage: controlPeer echo KEYFILE | sim URL KEYFILE HOST SLOTS\n');
  process.exitCode = 2;
}
process.exit();
