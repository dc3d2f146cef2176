// `bench memory` on the tiny model at short lengths (seconds): per-rank peaks grow with the
// length, the fitted line's slope is positive and predicts lengths beyond the measured ones, the
// ZeRO-1 moments of each of 2 ranks are half of the full moments (the size of the parameters), at
// ZeRO 2 the reduced gradient each rank keeps is half the parameters' size, at ZeRO 3 the
// parameters, gradients and moments held (with what is gathered at once: an attention run, an MLP
// matrix or slice) at most 0.55 of stage 0's for the tiny model (tiled and untiled MLP), 12 tiny
// layers and the small model (its embedding and LM head gathered in slices),
// and the H200 plan comes from resourceEstimate.ts, whose ZeRO parts divide as REFERENCE §8 says.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/packageRoot.js';
// the compiled bench: it spawns its rank processes from dist/bench
import { memoryBench } from '../../dist/bench/memory.js';
import { estimateRankMemory, gatheredPieceParams, paramCount, type ModelDims } from '../../src/train/resourceEstimate.js';

t.test('bench memory: three lengths, a fit and the plans', async (t) => {
  const lines: string[] = [];
  const r = await memoryBench.run({ model: 'tiny', sp: '2', zero: '1', lengths: '128,256,512', checkpointing: false }, (l) => lines.push(l));
  const lengths = r.lengths as { seq: number; peak_rss_bytes: number; ranks: { parts: Record<string, number> }[] }[];
  t.same(lengths.map((l) => l.seq), [128, 256, 512]);
  t.ok(lengths[2]!.peak_rss_bytes > lengths[0]!.peak_rss_bytes, `peak RSS grows: ${lengths.map((l) => l.peak_rss_bytes).join(' < ')}`);
  const p = lengths[0]!.ranks[0]!.parts;
  const ratio = p.optimizer! / (2 * p.parameters!);
  t.ok(ratio > 0.45 && ratio <= 0.55, `ZeRO 1 over 2 ranks: moments ${p.optimizer} bytes = ${ratio.toFixed(3)} of the full moments`);
  t.ok((r.fit_bytes_per_token as number) > 0, 'positive bytes per token');
  t.ok((r.longest_24gib as number) > 512, `24 GiB holds ${String(r.longest_24gib)} tokens`);
  const plan = r.h200_plan as { longest_tokens: number };
  t.ok(plan.longest_tokens > 100_000, `H200 plan: ${plan.longest_tokens} tokens`);
  t.ok(lines.some((l) => l.includes('ALST')), 'ALST figures printed beside the plan');
  const z2 = await memoryBench.run({ model: 'tiny', sp: '2', zero: '2', lengths: '128,256', checkpointing: false }, () => {});
  const q = (z2.lengths as { ranks: { parts: Record<string, number> }[] }[])[0]!.ranks[0]!.parts;
  const g = q.gradients! / q.parameters!;
  t.ok(g > 0.45 && g <= 0.55, `ZeRO 2 over 2 ranks: the reduced gradient kept is ${g.toFixed(3)} of the parameters' size`);
  t.equal(q.backward_gradient_buffer, q.parameters, 'the full-size buffer the backward writes is listed apart');
  t.ok(q.optimizer! / (2 * q.parameters!) <= 0.55, 'and the moments are halved as in stage 1');
  // ZeRO 3 holds half of everything plus what is gathered at once: one attention run's weights and
  // gradient (an MLP matrix or slice is no larger), 0.5 + 2 x run / (4 x whole) of stage 0, never a
  // whole layer. tiny's attention runs are 6.5% of its weights (its layers 24%); 12 such layers:
  // 2.2%. The tiled MLP (the default) goes by slices, the untiled one by matrices.
  const dir = t.testdir();
  const deep = join(dir, 'config.json');
  writeFileSync(deep, JSON.stringify({ ...JSON.parse(readFileSync(join(packageRoot(), 'examples/models/tiny/config.json'), 'utf8')), num_hidden_layers: 12 }));
  for (const [model, runShare, layerShare, untiled] of [['tiny', 0.065, 0.2392, false], ['tiny', 0.065, 0.2392, true], [deep, 0.0223, 0.0821, false]] as const) {
    const z3 = await memoryBench.run({ model, sp: '2', zero: '3', lengths: '128,256', checkpointing: false, 'untiled-mlp': untiled }, () => {});
    const z3r = (z3.lengths as { ranks: { stateBytes: number; stage0StateBytes: number; parts: Record<string, number> }[] }[])[0]!.ranks;
    const name = `${model === 'tiny' ? 'tiny' : '12 layers'}${untiled ? ', untiled MLP' : ''}`;
    for (const [i, r] of z3r.entries()) {
      const whole = r.stage0StateBytes / 4;
      const half = r.parts.parameters! / whole;
      t.ok(half > 0.45 && half <= 0.55, `ZeRO 3 ${name} rank ${i}: its part of the parameters is ${half.toFixed(3)} of the whole`);
      t.equal(r.parts.gradients, r.parts.parameters, `ZeRO 3 ${name} rank ${i}: and of the gradients the same`);
      const gathered = r.parts.gathered! / whole;
      t.ok(gathered > 0 && gathered <= 2 * runShare + 1e-3 && gathered < layerShare, `ZeRO 3 ${name} rank ${i}: at most one attention run's weights and gradient gathered at once (${gathered.toFixed(3)} of the weights' size), under one layer's weights (${layerShare})`);
      const ratio = r.stateBytes / r.stage0StateBytes;
      t.ok(ratio <= 0.5 + runShare / 2 + 1e-3 && ratio <= 0.55, `ZeRO 3 ${name} rank ${i}: parameters + gradients + optimizer + gathered ${ratio.toFixed(3)} <= 0.55 x stage 0`);
    }
  }
  // small: its embedding and LM head are 29% of its weights each, gathered in slices of 4096 of
  // their 32000 rows; its layers are 5% each
  const small = await memoryBench.run({ model: 'small', sp: '2', zero: '3', lengths: '128,256', checkpointing: false }, () => {});
  for (const [i, r] of (small.lengths as { ranks: { stateBytes: number; stage0StateBytes: number; parts: Record<string, number> }[] }[])[0]!.ranks.entries()) {
    const ratio = r.stateBytes / r.stage0StateBytes;
    t.ok(ratio <= 0.55, `ZeRO 3 small rank ${i}: parameters + gradients + optimizer + gathered ${ratio.toFixed(3)} <= 0.55 x stage 0`);
    const slice = (4096 * 512 * 8) / (r.stage0StateBytes / 4);
    t.ok(r.parts.gathered! / (r.stage0StateBytes / 4) < 2 * slice, `ZeRO 3 small rank ${i}: gathered at once ${(r.parts.gathered! / (r.stage0StateBytes / 4)).toFixed(3)} of the weights' size, not a whole LM head (0.29 with its gradient 0.58)`);
  }
  await t.rejects(memoryBench.run({ model: 'tiny', sp: '2', zero: '4' }, () => {}), /--zero must be 0, 1, 2 or 3/);
  await t.rejects(memoryBench.run({ model: 'no-such-model', sp: '2', zero: '1' }, () => {}), /--model no-such-model/);
  await t.rejects(memoryBench.run({ model: 'tiny', sp: '2', zero: '1', lengths: '127,256' }, () => {}), /multiple of --sp/);
});

t.test('resourceEstimate: ZeRO stages divide moments, gradients and weights over the world', async (t) => {
  const dims: ModelDims = { vocab: 1000, hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 4, headDim: 32, tied: false };
  const state = (zeroStage: number) => {
    const e = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'pt', bf16: false, cutoffLen: 1024, sp: 2, batch: 1, zeroStage, world: 2 });
    return e.parts.slice(0, 3).reduce((a, x) => a + x.bytes, 0);
  };
  const s0 = state(0);
  t.ok(state(1) < s0 && state(2) < state(1) && state(3) < state(2), 'each stage holds less');
  const P = paramCount(dims);
  // the attention run: q, k, v, o and two norms (larger than an MLP matrix, 688 x 256)
  const attention = 256 * 256 * 2 + 256 * 128 * 2 + 2 * 256;
  t.equal(s0, 16 * P, 'stage 0: 16 bytes per parameter');
  t.equal(state(1), 4 * P + 4 * P + 8 * P / 2, 'stage 1: moments halved');
  t.equal(state(3), 4 * (P / 2 + attention) + 4 * P / 2 + 8 * P / 2, `stage 3: everything halved plus one gathered attention run (${(state(3) / s0).toFixed(3)} x stage 0)`);
  // Llama-3.1-8B at world 8: an MLP matrix (58.7M) is the largest piece untiled; tiled, five slices of 3 x 4096 x (8 x 359)
  const l8b: ModelDims = { vocab: 128256, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128, tied: false };
  t.equal(gatheredPieceParams(l8b, 8, false), 4096 * 14336, 'untiled: one MLP matrix');
  t.equal(gatheredPieceParams(l8b, 8, true), 4096 * 4096 * 2 + 4096 * 1024 * 2 + 2 * 4096, 'tiled: the attention run, its slices smaller');
  const tiled = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'pt', bf16: false, cutoffLen: 65536, sp: 2, batch: 1, tiledMlp: true, lossChunkTokens: 512 });
  const plain = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'pt', bf16: false, cutoffLen: 65536, sp: 2, batch: 1 });
  t.ok(tiled.totalBytes < plain.totalBytes, 'tiled MLP and chunked loss need less');
});
