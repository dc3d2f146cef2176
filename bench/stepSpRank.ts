/**
 * One rank process of `bench step --sp N` (spawned by bench/stepSp.ts, never run by hand): the
 * training step (forward, backward, gradient reduction) on this rank's shard of one sequence, with
 * Ulysses attention over the SP group when sp > 1 (sp = 1: the whole sequence, no communication,
 * the baseline), in fp32 or bf16. Prints one `result <json>` line: best step time, time inside the attention
 * all-to-alls and the gradient all-reduce, peak RSS. Must never call process.exit.
 */
import { Model } from '../src/engine/model/index.js';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { fileStore } from '../src/engine/stores.js';
import { configureThreads } from '../src/engine/threads.js';
import { createParallelRuntime } from '../src/train/createParallelRuntime.js';
import { singleProcessRuntime, type ParallelRuntime } from '../src/train/ParallelRuntime.js';
import { benchSequenceShard } from './benchSequence.js';

interface Args {
  rank: number;
  sp: number;
  dir: string;
  config: string;
  seq: number;
  steps: number;
  checkpointing: boolean;
  threads: number;
  bf16: boolean;
}

const args = JSON.parse(process.argv[2]!) as Args;

async function main() {
  const threads = configureThreads({ threads: args.threads });
  const rt: ParallelRuntime = args.sp > 1 ? await createParallelRuntime({ rank: args.rank, world: args.sp, sp: args.sp, store: fileStore(args.dir), timeoutMs: 600_000 }) : singleProcessRuntime();
  const cfg = await readModelConfig(args.config);
  const model = await Model.create(cfg, { seed: 1, checkpointing: args.checkpointing, bf16: args.bf16 });
  rt.attachModel(model);
  const s = args.seq;
  // The same sequence as `bench step`: pseudo-random tokens, labels shifted by one, one document.
  const input = benchSequenceShard(s, cfg.vocabSize, args.sp, rt.spRank);

  const step = async () => {
    await model.zeroGrad();
    const t0 = performance.now();
    const r = await model.forward(input);
    await model.backward();
    const t1 = performance.now();
    await rt.reduceGradients(model.grads);
    const t2 = performance.now();
    return { loss: r.loss, total: (t2 - t0) / 1e3, reduce: (t2 - t1) / 1e3 };
  };
  const w0 = performance.now();
  await step(); // warm-up: allocates the activations and the Ulysses buffers
  const warm = (performance.now() - w0) / 1e3;
  let best = { loss: 0, total: Infinity, reduce: 0, comm: 0, allToAlls: 0, bytes: 0, profile: {} as Record<string, number> };
  for (let i = 0; i < args.steps; i++) {
    await rt.barrier('sp');
    model.sequenceParallelStats(true);
    model.setProfiling(true);
    const r = await step();
    const st = model.sequenceParallelStats();
    if (r.total < best.total) best = { ...r, comm: st?.commSeconds ?? 0, allToAlls: st?.allToAlls ?? 0, bytes: st?.bytes ?? 0, profile: model.profile() };
  }
  // The sequence's loss: each shard's sum of token losses over the global count, summed over the group.
  const loss = Float64Array.of(best.loss);
  await rt.allReduceSum(loss, 'sp');
  const result = {
    rank: args.rank,
    threads,
    localTokens: input.tokens.length,
    warmSeconds: warm,
    stepSeconds: best.total,
    reduceSeconds: best.reduce,
    commSeconds: best.comm,
    allToAlls: best.allToAlls,
    bytes: best.bytes,
    loss: loss[0]!,
    profile: best.profile,
    activationBytes: model.activationBytes,
    ulyssesBufferBytes: model.sequenceParallelStats()?.bufferBytes ?? 0,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  model.close();
  await rt.close();
  process.stdout.write('result ' + JSON.stringify(result) + '\n');
}

main().catch((e: Error & { code?: string }) => process.stdout.write('result ' + JSON.stringify({ error: { code: e.code, message: e.message } }) + '\n'));
