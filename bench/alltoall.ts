/**
 * All-to-all throughput between 2 local rank processes (spawned here; shared memory when both are
 * on this host, else loopback TCP through Gloo) for activation-sized buffers [s_local, H, d] fp32,
 * against a single-thread memcpy of the same buffer size measured in the same run:
 * ratio_to_memcpy = all-to-all GB/s / memcpy GB/s. Must never leave a rank process behind.
 *
 * What each side measures (B = one rank's buffer, s_local * H * d * 4 bytes):
 * - all-to-all (the headline, `gbps` / `ratio_to_memcpy`): the Ulysses seq->head layout as training
 *   runs it. The model's attention issues its all-to-alls from native code on a worker thread,
 *   back to back, never through JS, into head-layout buffers that it keeps in the communicator's
 *   shared window; so each rank runs 20 calls in one native call with the output in such a buffer
 *   (faulted in by an untimed call first, as the attention's buffers persist across steps), and
 *   the time per call is the slowest rank's mean, best over repetitions (both ranks start each
 *   repetition after a barrier). GB/s = B / that time. Per rank a call copies B: its own head
 *   group input -> output (B/2) and the peer's head group input -> the peer's output (B/2,
 *   written across cores, straight into the peer's window).
 * - also reported, `js_call_*`: one `seqToHead` call as JS sees it, into an ordinary JS array
 *   (the hop to a native worker thread and back included, 20-170 us here, and the output outside
 *   the window, so each chunk is copied twice: into the sender's segment and out of it), slowest
 *   rank, best over repetitions.
 * - memcpy: one thread copying B bytes between two buffers, best of back-to-back repetitions for
 *   0.5 s, measured after the ranks exited (so nothing of ours competes). At 4 MiB both buffers
 *   stay in the cache across repetitions; at 32 MiB they do not.
 * The baseline is the favourable one (1 B copied per B, cache-hot, no synchronization): the ratio
 * understates the all-to-all's efficiency rather than flatters it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../src/engine/native.js';
import type { Benchmark } from './types.js';

interface Timing {
  s: number;
  H: number;
  d: number;
  bytes: number;
  seqToHeadSeconds: number;
  allToAllSeconds: number;
  engineSeqToHeadSeconds: number;
  sharedMemory: boolean;
}

function runRanks(shapes: [number, number, number][], reps: number): Promise<Timing[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ua-alltoall-'));
  const script = fileURLToPath(new URL('./alltoallRank.js', import.meta.url));
  const children: ChildProcess[] = [];
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise<Timing[]>((resolve, reject) => {
    let result: Timing[] | undefined;
    let errors = '';
    let left = 2;
    for (let rank = 0; rank < 2; rank++) {
      const child = spawn(process.execPath, [script, JSON.stringify({ rank, size: 2, dir, shapes, reps })], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (errors += d.toString()));
      child.on('close', (code) => {
        const m = /^result (.*)$/m.exec(out);
        if (m) result = JSON.parse(m[1]!) as Timing[];
        if (code !== 0) errors += `rank ${rank} exited with code ${code}\n`;
        if (--left === 0) {
          cleanup();
          if (result && !errors) resolve(result);
          else reject(new Error(`alltoall ranks failed:\n${errors}`));
        }
      });
    }
    process.once('exit', cleanup);
  });
}

export const alltoallBench: Benchmark = {
  options: {
    heads: { type: 'string', default: '8' },
    'head-dim': { type: 'string', default: '64' },
    tokens: { type: 'string', default: '2048,16384' },
    reps: { type: 'string', default: '30' },
  },
  async run(opts, log) {
    const H = Number(opts.heads), d = Number(opts['head-dim']), reps = Number(opts.reps);
    const shapes = String(opts.tokens)
      .split(',')
      .map((s) => [Number(s), H, d] as [number, number, number]);
    const timings = await runRanks(shapes, reps);
    const sizes = [];
    for (const t of timings) {
      // Measured after the ranks exit so the two do not compete for the cores.
      const memcpy = (await native().memcpyGbps(t.bytes, 0.5)) as number;
      const gbps = t.bytes / t.engineSeqToHeadSeconds / 1e9;
      const jsGbps = t.bytes / t.seqToHeadSeconds / 1e9;
      const plain = t.bytes / t.allToAllSeconds / 1e9;
      log(
        `alltoall: [${t.s}, ${t.H}, ${t.d}] fp32 (${(t.bytes / 2 ** 20).toFixed(1)} MiB per rank), 2 ranks${t.sharedMemory ? ' (shared memory)' : ' (TCP)'}: seqToHead ${gbps.toFixed(2)} GB/s ` +
          `(${(t.engineSeqToHeadSeconds * 1e3).toFixed(3)} ms per call, native back to back, output in the shared window), memcpy ${memcpy.toFixed(2)} GB/s, ratio ${(gbps / memcpy).toFixed(3)}; ` +
          `one call from JS ${jsGbps.toFixed(2)} GB/s (${(t.seqToHeadSeconds * 1e3).toFixed(3)} ms, ratio ${(jsGbps / memcpy).toFixed(3)}), plain all-to-all from JS ${plain.toFixed(2)} GB/s`,
      );
      sizes.push({
        s: t.s, H: t.H, d: t.d, bytes: t.bytes, shared_memory: t.sharedMemory, gbps, memcpy_gbps: memcpy, ratio_to_memcpy: gbps / memcpy,
        js_call_gbps: jsGbps, js_call_ratio_to_memcpy: jsGbps / memcpy, alltoall_gbps: plain,
      });
    }
    const first = sizes[0]!;
    return { bench: 'alltoall', ranks: 2, bytes: first.bytes, gbps: first.gbps, memcpy_gbps: first.memcpy_gbps, ratio_to_memcpy: first.ratio_to_memcpy, sizes };
  },
};
