/**
 * Figures shared by `bench step` (one process) and `bench step --sp N` (rank processes): the
 * model FLOPs of REFERENCE §4 and the per-phase breakdown of a step. Pure functions of what the
 * benchmarks measured; must never time anything themselves.
 */
import type { ModelConfig } from '../src/engine/modelConfig.js';

export type Precision = 'fp32' | 'bf16';

/**
 * Model FLOPs per token (REFERENCE §4): 6 N + 12 layers H d s / 2 (causal), N = every parameter
 * that takes part in a product, i.e. all but the input embedding table (a lookup); the LM head
 * counts, also when tied to the embedding. `withEmbedding` counts every parameter (the figure
 * with the input embedding included, printed beside it, labelled; the same when tied).
 */
export function modelFlopsPerToken(cfg: ModelConfig, params: number, s: number): { perToken: number; withEmbedding: number; productParams: number } {
  const embedding = cfg.vocabSize * cfg.hiddenSize;
  // Tied: the table IS the LM head, a product; untied: the table is only looked up.
  const productParams = cfg.tieWordEmbeddings ? params : params - embedding;
  const attention = (12 * cfg.numHiddenLayers * cfg.numAttentionHeads * cfg.headDim * s) / 2;
  return { perToken: 6 * productParams + attention, withEmbedding: 6 * params + attention, productParams };
}

/** Seconds of one step by phase; `other` is what no phase accounts for (scheduling, hops). */
export interface Phases {
  gemm: number;
  attention: number;
  lm_head: number;
  elementwise: number;
  communication: number;
  optimizer: number;
  other: number;
}

/**
 * The phases of a step from the model's profile (seconds by category, llama.h ProfileCategory
 * names), the step's forward + backward wall time, and what the benchmark timed itself: the
 * optimizer step and the gradient all-reduce (communication, beside the attention all-to-alls the
 * profile holds inside attention_forward / attention_backward and again under `communication`).
 */
export function phasesOf(profile: Record<string, number>, fwdBwdSeconds: number, optimizerSeconds: number, reduceSeconds = 0): Phases {
  const p = (k: string) => profile[k] ?? 0;
  const alltoall = p('communication');
  const phases: Phases = {
    gemm: p('gemm'),
    attention: p('attention_forward') + p('attention_backward') - alltoall,
    lm_head: p('lm_head_forward') + p('lm_head_backward'),
    elementwise: p('rmsnorm') + p('rope') + p('swiglu') + p('copy_zero') + p('embedding') + p('convert'),
    communication: alltoall + reduceSeconds,
    optimizer: optimizerSeconds,
    other: 0,
  };
  const counted = phases.gemm + phases.attention + phases.lm_head + phases.elementwise + alltoall;
  phases.other = Math.max(0, fwdBwdSeconds - counted);
  return phases;
}

/** "gemm 1.23 s (31%), attention ..." over the whole step (forward, backward, reduction, optimizer). */
export function formatPhases(ph: Phases): string {
  const total = Object.values(ph).reduce((a, b) => a + b, 0);
  return Object.entries(ph)
    .map(([k, v]) => `${k} ${v.toFixed(2)} s (${((100 * v) / Math.max(total, 1e-12)).toFixed(0)}%)`)
    .join(', ');
}
