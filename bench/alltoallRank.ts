/**
 * One rank process of `bench alltoall` (spawned by bench/alltoall.ts, never run by hand): connects
 * through a file store, times the Ulysses seq->head all-to-all and a plain all-to-all for each
 * buffer size, and prints one `result <json>` line on rank 0. Must never call process.exit.
 */
import { Communicator } from '../src/engine/Communicator.js';
import { fileStore } from '../src/engine/stores.js';

interface Args {
  rank: number;
  size: number;
  dir: string;
  shapes: [number, number, number][];
  reps: number;
}

const args = JSON.parse(process.argv[2]!) as Args;

/** Best over reps of the slowest rank's time for one call of `op` (ranks start together). */
async function time(c: Communicator, reps: number, op: () => Promise<unknown>): Promise<number> {
  await op();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    await c.barrier();
    const t0 = performance.now();
    await op();
    const mine = (performance.now() - t0) / 1e3;
    const all = await c.allGather(Float64Array.from([mine]));
    best = Math.min(best, Math.max(...all));
  }
  return best;
}

/** Calls per timed native loop: enough that one call's start skew between the ranks averages out. */
const ENGINE_ITERS = 20;

/**
 * Best over reps of the slowest rank's mean time per call over ENGINE_ITERS back-to-back calls
 * inside one native call (the path the model's Ulysses attention takes).
 */
async function timeEngine(c: Communicator, reps: number, loop: (iters: number) => Promise<number>): Promise<number> {
  await loop(2);
  let best = Infinity;
  for (let i = 0; i < Math.max(3, Math.ceil(reps / 3)); i++) {
    await c.barrier();
    const mine = (await loop(ENGINE_ITERS)) / ENGINE_ITERS;
    const all = await c.allGather(Float64Array.from([mine]));
    best = Math.min(best, Math.max(...all));
  }
  return best;
}

async function main() {
  const c = await Communicator.connect({ rank: args.rank, size: args.size, store: fileStore(args.dir), timeoutMs: 60_000 });
  const out = [];
  for (const [s, H, d] of args.shapes) {
    const x = Float32Array.from({ length: s * H * d }, (_, i) => i % 1000);
    const y = new Float32Array(x.length);
    const ulysses = await time(c, args.reps, () => c.seqToHead(x, s, H, d, y));
    const plain = await time(c, args.reps, () => c.allToAll(x, y));
    const engine = await timeEngine(c, args.reps, (iters) => c.timeUlysses('seqToHead', x, s, H, d, y, iters));
    out.push({ s, H, d, bytes: x.byteLength, seqToHeadSeconds: ulysses, allToAllSeconds: plain, engineSeqToHeadSeconds: engine, sharedMemory: c.sharedMemory });
  }
  await c.close();
  if (args.rank === 0) process.stdout.write('result ' + JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`alltoall rank ${args.rank}: ${(e as Error & { code?: string }).code ?? ''} ${(e as Error).message}\n`);
  process.exitCode = 1;
});
