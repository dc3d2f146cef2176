/**
 * Memory a training rank will need, estimated before anything starts, against what this machine
 * has: parameters x bytes (weights, bf16 copies, gradients, AdamW moments, DPO's reference copy
 * unless precompute_ref_log_probs scores it before training)
 * plus an activations estimate for cutoff_len under sequence parallelism, with and without
 * per-layer checkpointing. A job that cannot fit is refused with the numbers (exit 2 from `up`, a
 * deterministic ERR_CONFIG from a rank on a host whose memory `up` cannot see).
 *
 * It reads the raw config.json numbers itself, before the engine's parser: a config with
 * `num_hidden_layers: 1e9` must be refused here, not by a parser or an allocation that blocks a
 * rank's event loop. Must never allocate in proportion to the model: arithmetic only.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import type { ConfigProblem } from '../config/ConfigError.js';
import type { JobConfig } from '../config/JobConfig.js';

/** The shape numbers that decide memory (config.json's, HF names in the comments). */
export interface ModelDims {
  vocab: number; // vocab_size
  hidden: number; // hidden_size
  intermediate: number; // intermediate_size
  layers: number; // num_hidden_layers
  heads: number; // num_attention_heads
  kvHeads: number; // num_key_value_heads (default: heads)
  headDim: number; // head_dim (default: hidden / heads)
  tied: boolean; // tie_word_embeddings
}

export interface EstimateInput {
  dims: ModelDims;
  finetuning: 'full' | 'lora';
  loraRank: number;
  stage: 'pt' | 'sft' | 'dpo' | 'rm' | 'kto';
  bf16: boolean;
  cutoffLen: number;
  sp: number;
  batch: number;
  /** ZeRO stage over `world` ranks (REFERENCE §8): 1 divides the moments, 2 also the gradients, 3 also the weights (default 0) */
  zeroStage?: number;
  /** ranks that share the sharded state (default sp) */
  world?: number;
  /** tiled MLP: no saved [tokens, intermediate] blocks, a hidden x intermediate tile's scratch instead */
  tiledMlp?: boolean;
  /** the loss in token chunks of this size (the engine's fused LM head): logits for one chunk, not every token */
  lossChunkTokens?: number;
  /** dpo/kto with precompute_ref_log_probs: the reference was scored before training, no frozen copy is held */
  precomputedReference?: boolean;
}

export interface RankEstimate {
  params: number;
  trainable: number;
  /** named parts in bytes, activations without checkpointing (what training runs) */
  parts: { name: string; bytes: number }[];
  totalBytes: number;
  /** the activations part if per-layer checkpointing were on */
  checkpointedActivationBytes: number;
}

const KEYS: Record<Exclude<keyof ModelDims, 'tied' | 'kvHeads' | 'headDim'>, string> = {
  vocab: 'vocab_size', hidden: 'hidden_size', intermediate: 'intermediate_size', layers: 'num_hidden_layers', heads: 'num_attention_heads',
};

/** The dims of a parsed config.json, or the first problem (a key and what is wrong with it). */
export function modelDimsOf(hf: Record<string, unknown>): ModelDims | { key: string; message: string } {
  const int = (k: string, fallback?: number): number | string => {
    const v = hf[k] ?? fallback;
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : `expected a positive integer, got ${JSON.stringify(v)}`;
  };
  const out: Record<string, number> = {};
  for (const [field, key] of Object.entries(KEYS)) {
    const v = int(key);
    if (typeof v === 'string') return { key, message: v };
    out[field] = v;
  }
  const kv = int('num_key_value_heads', out.heads);
  if (typeof kv === 'string') return { key: 'num_key_value_heads', message: kv };
  const hd = int('head_dim', Math.floor(out.hidden! / out.heads!) || 1);
  if (typeof hd === 'string') return { key: 'head_dim', message: hd };
  return { vocab: out.vocab!, hidden: out.hidden!, intermediate: out.intermediate!, layers: out.layers!, heads: out.heads!, kvHeads: kv, headDim: hd, tied: hf.tie_word_embeddings === true };
}

/** The seven linear layers of a decoder layer as [in, out]. */
function linears(d: ModelDims): [number, number][] {
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  return [[d.hidden, q], [d.hidden, kv], [d.hidden, kv], [q, d.hidden], [d.hidden, d.intermediate], [d.hidden, d.intermediate], [d.intermediate, d.hidden]];
}

/** Parameters of a Llama-family model (biases and q/k norms are noise at this scale and left out). */
export function paramCount(d: ModelDims): number {
  const perLayer = linears(d).reduce((a, [i, o]) => a + i * o, 0) + 2 * d.hidden;
  return d.vocab * d.hidden * (d.tied ? 1 : 2) + d.layers * perLayer + d.hidden;
}

/**
 * ZeRO 3: parameters of the largest piece of a layer gathered at once (native llama.h): the
 * attention run (its four projections and two norms), or, untiled, one MLP matrix; the tiled MLP
 * goes by slices of the intermediate dimension no larger than the attention run.
 */
export function gatheredPieceParams(d: ModelDims, world: number, tiledMlp: boolean): number {
  const attention = linears(d).slice(0, 4).reduce((a, [i, o]) => a + i * o, 0) + 2 * d.hidden;
  const matrix = d.hidden * d.intermediate;
  if (!tiledMlp) return Math.max(attention, matrix);
  const rows = Math.ceil(d.intermediate / world);
  const slices = Math.max(1, Math.min(rows, Math.ceil((3 * matrix) / attention)));
  return Math.max(attention, 3 * d.hidden * world * Math.ceil(rows / slices));
}

export function estimateRankMemory(x: EstimateInput): RankEstimate {
  const d = x.dims;
  const params = paramCount(d);
  const trainable = x.finetuning === 'lora' ? d.layers * linears(d).reduce((a, [i, o]) => a + x.loraRank * (i + o), 0) : params;
  const act = x.bf16 ? 2 : 4;
  // this rank's tokens: the sequence split over sp (Ulysses keeps every activation sharded:
  // attention sees the whole sequence but heads / sp of it); dpo runs chosen and rejected
  const tokens = Math.ceil(x.cutoffLen / x.sp) * x.batch * (x.stage === 'dpo' || x.stage === 'rm' || x.stage === 'kto' ? 2 : 1);
  // what backward keeps per token and layer: norms and residuals, q/k/v, attention output and
  // its softmax statistics, the MLP's gate/up/activation/down input
  const perTokenLayer = 4 * d.hidden + 2 * d.heads * d.headDim + 2 * d.kvHeads * d.headDim + d.heads + (x.tiledMlp ? 0 : 4 * d.intermediate);
  const mlpTile = x.tiledMlp ? 5 * d.hidden * d.intermediate * 4 : 0;  // kernels/mlp_tiled.h: 5 fp32 [tile ~ hidden, I] blocks
  // + logits and their gradient (fp32): per token, or for one chunk of the fused loss
  const logits = x.lossChunkTokens ? 2 * Math.min(tokens, x.lossChunkTokens) * d.vocab * 4 : tokens * 2 * d.vocab * 4;
  const activations = tokens * d.layers * perTokenLayer * act + logits + mlpTile;
  // checkpointing: every layer's input plus one recomputed layer, which reads that input in place
  const checkpointed = tokens * (d.layers * d.hidden * act + (perTokenLayer - d.hidden) * act) + logits + mlpTile;
  // ZeRO: each sharded part is 1/world of the whole (stage 3 also holds the piece gathered at once)
  const world = x.world ?? x.sp;
  const stage = x.zeroStage ?? 0;
  const share = (from: number) => (stage >= from ? world : 1);
  const weights = params / share(3) + (stage >= 3 ? gatheredPieceParams(d, world, x.tiledMlp === true) : 0);
  const zeroNote = (from: number) => (stage >= from && world > 1 ? `, ZeRO ${stage}: 1/${world}` : '');
  const parts = [
    { name: `weights (fp32${zeroNote(3)})`, bytes: weights * 4 },
    ...(x.bf16 ? [{ name: `bf16 weight copies${zeroNote(3) ? ` (${zeroNote(3).slice(2)})` : ''}`, bytes: weights * 2 }] : []),
    { name: `gradients (${trainable} trainable${zeroNote(2)})`, bytes: (trainable / share(2)) * 4 },
    { name: `AdamW moments${zeroNote(1) ? ` (${zeroNote(1).slice(2)})` : ''}`, bytes: (trainable / share(1)) * 8 },
    // full-FT dpo/kto's frozen reference: whole, or under ZeRO 3 sharded like the weights
    ...((x.stage === 'dpo' || x.stage === 'kto') && x.finetuning === 'full' && !x.precomputedReference ? [{ name: 'DPO reference copy', bytes: (stage >= 3 ? weights : params) * 4 }] : []),
    { name: `activations (${tokens} tokens of cutoff_len ${x.cutoffLen} / sp ${x.sp}, no checkpointing)`, bytes: activations },
  ];
  return { params, trainable, parts, totalBytes: parts.reduce((a, p) => a + p.bytes, 0), checkpointedActivationBytes: checkpointed };
}

/** Memory this process may use: the machine's, or its cgroup's limit when lower. */
export function machineMemory(): { bytes: number; source: string } {
  let best = { bytes: totalmem(), source: 'os.totalmem()' };
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    const v = Number(text);
    if (Number.isFinite(v) && v > 0 && v < best.bytes) best = { bytes: v, source: `the cgroup limit (${file})` };
  }
  return best;
}

export function formatBytes(b: number): string {
  if (b >= 1e21) return `${b.toExponential(2)} B`;
  for (const [unit, size] of [['EB', 1e18], ['PB', 1e15], ['TB', 1e12], ['GB', 1e9], ['MB', 1e6], ['kB', 1e3]] as const) if (b >= size) return `${(b / size).toFixed(1)} ${unit}`;
  return `${b} B`;
}

/**
 * Problems (none when it fits) of running `ranksHere` ranks of the job on a machine with
 * `memory`. A config.json that cannot be read is left to the other checks.
 */
export function resourceProblems(c: JobConfig, modelDir: string, ranksHere: number, memory: { bytes: number; source: string }): ConfigProblem[] {
  let hf: unknown;
  try {
    hf = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  } catch {
    return [];
  }
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) return [];
  const dims = modelDimsOf(hf as Record<string, unknown>);
  if ('key' in dims) return [{ key: 'model_name_or_path', value: modelDir, message: `config.json ${dims.key}: ${dims.message}`, fix: 'give a valid HF config.json' }];
  const e = estimateRankMemory({ dims, finetuning: c.finetuning_type, loraRank: c.lora_rank, stage: c.stage, bf16: c.bf16, cutoffLen: c.cutoff_len, sp: c.sequence_parallel_size, batch: c.per_device_train_batch_size, precomputedReference: c.precompute_ref_log_probs });
  const need = e.totalBytes * ranksHere;
  if (need <= memory.bytes) return [];
  const parts = e.parts.map((p) => `${p.name} ${formatBytes(p.bytes)}`).join(' + ');
  return [{
    key: 'model_name_or_path',
    value: modelDir,
    message: `cannot fit in memory: ${ranksHere} rank(s) here x ${formatBytes(e.totalBytes)} each = ${formatBytes(need)}, but ${memory.source} is ${formatBytes(memory.bytes)}. Per rank, for ${e.params.toExponential(3)} parameters (${dims.layers} layers, hidden ${dims.hidden}): ${parts} (activations with per-layer checkpointing would be ${formatBytes(e.checkpointedActivationBytes)})`,
    fix: 'use a smaller model, fewer ranks per host, a shorter cutoff_len, a larger sequence_parallel_size or finetuning_type: lora',
  }];
}

/** The check as a rank runs it, on its own host (whose memory `up` may not see): throws ERR_CONFIG. */
export function assertFits(c: JobConfig, modelDir: string, ranksHere: number): void {
  const [p] = resourceProblems(c, modelDir, ranksHere, machineMemory());
  if (p) throw Object.assign(new Error(`${p.key} ${String(p.value)}: ${p.message}; fix: ${p.fix}`), { code: 'ERR_CONFIG' });
}
