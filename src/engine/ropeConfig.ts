/**
 * RoPE scaling of a Hugging Face config (REFERENCE §7): reads `rope_scaling` (transformers 4.x;
 * key `rope_type`, older configs `type`) or `rope_parameters` (transformers 5), checks every key
 * against what transformers' modeling_rope_utils reads for that type, and resolves every default
 * it applies, so the native engine receives complete parameters and never guesses. The frequency
 * math itself lives in native/src/kernels/rope.cc. Must never accept a key it would ignore or a
 * type it cannot compute: those are problems naming the key, never a different computation.
 *
 * Two points where transformers' behaviour has varied, and what is computed here:
 * - yarn uses the config's `factor` (current transformers, after huggingface/transformers#40320;
 *   earlier 4.x releases replaced it by max_position_embeddings / original_max_position_embeddings
 *   whenever the latter was given, which made Qwen2.5's published block a no-op).
 * - dynamic: the base follows each sequence's length n = largest position id + 1 (when n exceeds
 *   max_position_embeddings). transformers caches the largest n seen and keeps that base until a
 *   sequence shorter than max_position_embeddings resets it; per sequence is what a fresh model
 *   computes for every sequence, and it does not depend on the order of the data.
 */
import type { ModelConfigProblems } from './modelConfigProblems.js';

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'yarn'];

/**
 * Resolved rope parameters. Every field is always present; a field the type does not use holds
 * the neutral value given here (factor 1, attention factor 1, ...).
 */
export interface RopeConfig {
  type: RopeType;
  /** Scaling factor (linear, dynamic, llama3, yarn); 1 for default. */
  factor: number;
  /** llama3: wavelengths above original / lowFreqFactor are scaled by 1/factor. */
  lowFreqFactor: number;
  /** llama3: wavelengths below original / highFreqFactor are kept. */
  highFreqFactor: number;
  /** llama3 and yarn: the pretraining context (yarn: default max_position_embeddings); 0 otherwise. */
  originalMaxPositionEmbeddings: number;
  /** yarn: ramp bounds in rotations (HF defaults 32 and 1). */
  betaFast: number;
  betaSlow: number;
  /** yarn: floor/ceil the correction range (HF default true). */
  truncate: boolean;
  /** yarn: multiplies cos and sin (default from the factor, HF's get_mscale); 1 otherwise. */
  attentionFactor: number;
}

const NEUTRAL: RopeConfig = {
  type: 'default', factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 0,
  betaFast: 32, betaSlow: 1, truncate: true, attentionFactor: 1,
};

/** Keys each type reads (besides the type key itself), as transformers' validation lists them. */
const KEYS: Record<RopeType, { required: string[]; optional: string[] }> = {
  default: { required: [], optional: [] },
  linear: { required: ['factor'], optional: [] },
  // original_max_position_embeddings is accepted for dynamic (HF's validation lists it) but, as
  // in HF, the base grows from max_position_embeddings.
  dynamic: { required: ['factor'], optional: ['original_max_position_embeddings'] },
  llama3: { required: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'], optional: [] },
  yarn: { required: ['factor'], optional: ['original_max_position_embeddings', 'attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'truncate'] },
};

// transformers 5 keeps these in rope_parameters too.
const V5_KEYS = ['rope_theta', 'partial_rotary_factor'];

/** YaRN's magnitude correction (HF get_mscale): 1 for scale <= 1, else 0.1 mscale ln(scale) + 1. */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ParsedRope {
  rope: RopeConfig;
  /** rope_theta from rope_parameters (transformers 5), when given there. */
  theta?: number;
}

/**
 * The rope of `hf` (null / absent rope_scaling: default). `maxPositionEmbeddings` is the
 * config's (resolved) max_position_embeddings, yarn's default original context.
 */
export function parseRope(hf: Record<string, unknown>, maxPositionEmbeddings: number, p: ModelConfigProblems): ParsedRope {
  const scaling = hf.rope_scaling;
  const params = hf.rope_parameters;
  let block: Record<string, unknown> | null = null;
  let where = 'rope_scaling';
  if (scaling !== undefined && scaling !== null && params !== undefined && params !== null) {
    p.add('rope_parameters', 'both rope_scaling and rope_parameters are given', undefined, 'keep one of them (transformers 5 writes rope_parameters, 4.x rope_scaling)');
    return { rope: { ...NEUTRAL } };
  }
  if (scaling !== undefined && scaling !== null) {
    if (!isObject(scaling)) {
      p.add('rope_scaling', 'expected an object or null', scaling);
      return { rope: { ...NEUTRAL } };
    }
    block = scaling;
  } else if (params !== undefined && params !== null) {
    where = 'rope_parameters';
    if (!isObject(params)) {
      p.add('rope_parameters', 'expected an object or null', params);
      return { rope: { ...NEUTRAL } };
    }
    if (Object.values(params).some(isObject)) {
      p.add('rope_parameters', 'per-layer-type rope parameters are not supported (one rope for every layer)', undefined);
      return { rope: { ...NEUTRAL } };
    }
    block = params;
  }
  if (block === null) return { rope: { ...NEUTRAL } };

  const key = (k: string) => `${where}.${k}`;
  const kindNew = block.rope_type;
  const kindOld = block.type;
  if (kindNew !== undefined && kindOld !== undefined && kindNew !== kindOld) {
    p.add(key('type'), `disagrees with rope_type (${JSON.stringify(kindOld)} vs ${JSON.stringify(kindNew)})`, undefined, 'give one rope type');
    return { rope: { ...NEUTRAL } };
  }
  const kind = kindNew ?? kindOld;
  if (kind === undefined) {
    p.add(key('rope_type'), 'missing key', undefined, `name the type: one of ${ROPE_TYPES.join(', ')}`);
    return { rope: { ...NEUTRAL } };
  }
  if (typeof kind !== 'string' || !(ROPE_TYPES as readonly string[]).includes(kind)) {
    p.add(key('rope_type'), `unsupported rope type (supported: ${ROPE_TYPES.join(', ')})`, kind);
    return { rope: { ...NEUTRAL } };
  }
  const type = kind as RopeType;
  const spec = KEYS[type];
  const known = new Set(['rope_type', 'type', ...spec.required, ...spec.optional, ...(where === 'rope_parameters' ? V5_KEYS : [])]);
  for (const k of Object.keys(block)) {
    if (!known.has(k)) p.add(key(k), `unknown parameter for rope_type ${type} (it reads ${[...spec.required, ...spec.optional].join(', ') || 'none'})`, block[k], 'remove it');
  }
  for (const k of spec.required) if (block[k] === undefined || block[k] === null) p.add(key(k), `missing key (required by rope_type ${type})`);

  const num = (k: string, ok: (x: number) => boolean, what: string): number | undefined => {
    const v = block![k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      p.add(key(k), `expected ${what}`, v);
      return undefined;
    }
    return v;
  };
  let theta: number | undefined;
  if (where === 'rope_parameters') {
    theta = num('rope_theta', (x) => x > 0, 'a positive number');
    const prf = num('partial_rotary_factor', (x) => x > 0 && x <= 1, 'a number in (0, 1]');
    if (prf !== undefined && prf !== 1) p.add(key('partial_rotary_factor'), 'partial rotary embeddings are not supported (every head dimension rotates)', prf);
  }
  const rope: RopeConfig = { ...NEUTRAL, type };
  if (type === 'default') return { rope, theta };

  const factor = num('factor', (x) => x >= 1, 'a number >= 1');
  if (factor !== undefined) rope.factor = factor;
  if (type === 'llama3') {
    const low = num('low_freq_factor', (x) => x > 0, 'a positive number');
    const high = num('high_freq_factor', (x) => x > 0, 'a positive number');
    const orig = num('original_max_position_embeddings', (x) => Number.isInteger(x) && x > 0, 'a positive integer');
    if (low !== undefined) rope.lowFreqFactor = low;
    if (high !== undefined) rope.highFreqFactor = high;
    if (low !== undefined && high !== undefined && !(high > low)) p.add(key('high_freq_factor'), `must be greater than low_freq_factor (${low})`, high);
    if (orig !== undefined) rope.originalMaxPositionEmbeddings = orig;
  } else if (type === 'yarn') {
    const orig = num('original_max_position_embeddings', (x) => Number.isInteger(x) && x > 0, 'a positive integer');
    // HF: `rope_scaling.get(...) or max_position_embeddings`, beta_fast/beta_slow `or 32` / `or 1`
    // (a 0 means the default as well).
    rope.originalMaxPositionEmbeddings = orig || maxPositionEmbeddings;
    rope.betaFast = num('beta_fast', (x) => x >= 0, 'a non-negative number') || 32;
    rope.betaSlow = num('beta_slow', (x) => x >= 0, 'a non-negative number') || 1;
    if (rope.betaFast < rope.betaSlow) p.add(key('beta_fast'), `must be at least beta_slow (${rope.betaSlow})`, rope.betaFast);
    const t = block.truncate;
    if (t !== undefined && t !== null && typeof t !== 'boolean') p.add(key('truncate'), 'expected true or false', t);
    rope.truncate = t !== false;
    const af = num('attention_factor', (x) => x > 0, 'a positive number');
    const mscale = num('mscale', (x) => x >= 0, 'a non-negative number');
    const mscaleAll = num('mscale_all_dim', (x) => x >= 0, 'a non-negative number');
    if (af !== undefined) rope.attentionFactor = af;
    else if (mscale && mscaleAll) rope.attentionFactor = yarnMscale(rope.factor, mscale) / yarnMscale(rope.factor, mscaleAll);
    else rope.attentionFactor = yarnMscale(rope.factor);
  }
  return { rope, theta };
}
