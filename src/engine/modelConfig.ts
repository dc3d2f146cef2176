/**
 * Hugging Face `config.json` for the Llama family (model_type llama, qwen2, qwen3, mistral):
 * parsing with validation into the engine's ModelConfig (every key HF reads, with HF's default
 * for that model type), and back into HF JSON for saving. Problems are collected (each naming its
 * key) and refused together with ERR_CONFIG; `modelConfigProblems` returns them for check-config.
 * Must never guess silently: anything that would change the math and is not computed here (other
 * rope types, partial rotary, MLP biases, other activations, attention dropout, other model types)
 * is a problem rather than something computed differently from HF.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { EngineError } from './errors.js';
import { ModelConfigProblems, formatModelConfigProblem, type ModelConfigProblem } from './modelConfigProblems.js';
import { parseRope, type RopeConfig } from './ropeConfig.js';

export type ModelType = 'llama' | 'qwen2' | 'qwen3' | 'mistral';
export const MODEL_TYPES: readonly ModelType[] = ['llama', 'qwen2', 'qwen3', 'mistral'];

export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** config.json's head_dim when given (it may differ from hidden / heads), else HF's default. */
  headDim: number;
  ropeTheta: number;
  /** Rope scaling type with every parameter resolved (ropeConfig.ts). */
  rope: RopeConfig;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (qwen2 always; llama and qwen3 with attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj (llama and qwen3 with attention_bias). */
  oBias: boolean;
  /** qwen3: RMSNorm over head_dim on every q and k head before RoPE (q_norm / k_norm weights). */
  qkNorm: boolean;
  /** Sliding window of the sliding layers (mistral; qwen2/qwen3 with use_sliding_window), else null. */
  slidingWindow: number | null;
  /** Per layer: its attention window in tokens (0: full causal attention). */
  layerWindows: number[];
  initializerRange: number;
  maxPositionEmbeddings: number;
  /** The JSON it was parsed from (kept so saving preserves keys this engine does not use). */
  hf: Record<string, unknown>;
}

/** HF's defaults per model type (the config classes' constructor defaults). */
const DEFAULTS: Record<ModelType, { maxPositionEmbeddings: number; headDim: number | null }> = {
  llama: { maxPositionEmbeddings: 2048, headDim: null },
  qwen2: { maxPositionEmbeddings: 32768, headDim: null },
  qwen3: { maxPositionEmbeddings: 32768, headDim: 128 },
  mistral: { maxPositionEmbeddings: 4096 * 32, headDim: null },
};
const ROPE_THETA = 10000;
const RMS_NORM_EPS = 1e-6;
const INITIALIZER_RANGE = 0.02;
/** Mistral's sliding_window when the key is absent; qwen2/qwen3's when use_sliding_window is on. */
const SLIDING_WINDOW = 4096;
/** qwen2/qwen3: layers below this index attend fully when sliding windows are on. */
const MAX_WINDOW_LAYERS = 28;

class Reader {
  constructor(
    readonly hf: Record<string, unknown>,
    readonly p: ModelConfigProblems,
  ) {}

  positiveInt(key: string, fallback?: number): number {
    const v = this.hf[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.p.add(key, 'missing key');
      return 1;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      this.p.add(key, `expected a positive integer, got ${JSON.stringify(v)}`);
      return fallback ?? 1;
    }
    return v;
  }

  positiveNumber(key: string, fallback: number): number {
    const v = this.hf[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      this.p.add(key, `expected a positive number, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.hf[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      this.p.add(key, `expected true or false, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }
}

/** Per-layer windows: mistral slides every layer; qwen2/qwen3 per layer_types (or max_window_layers). */
function layerWindows(r: Reader, modelType: ModelType, layers: number): { slidingWindow: number | null; windows: number[] } {
  const none = { slidingWindow: null, windows: new Array<number>(layers).fill(0) };
  if (modelType === 'llama') return none;
  const raw = r.hf.sliding_window;
  let window: number | null;
  if (raw === null) window = null;
  else if (raw === undefined) window = SLIDING_WINDOW;
  else if (typeof raw !== 'number' || !Number.isInteger(raw) || raw <= 0) {
    r.p.add('sliding_window', `expected a positive integer or null, got ${JSON.stringify(raw)}`);
    return none;
  } else window = raw;
  if (modelType === 'mistral') {
    return window === null ? none : { slidingWindow: window, windows: new Array<number>(layers).fill(window) };
  }
  // qwen2 / qwen3: the window exists only with use_sliding_window; it applies to the layers
  // layer_types marks sliding (default: those at index >= max_window_layers).
  const on = r.bool('use_sliding_window', false);
  const maxWindowLayers = r.hf.max_window_layers === undefined || r.hf.max_window_layers === null ? MAX_WINDOW_LAYERS : r.hf.max_window_layers;
  if (typeof maxWindowLayers !== 'number' || !Number.isInteger(maxWindowLayers) || maxWindowLayers < 0) {
    r.p.add('max_window_layers', `expected a non-negative integer, got ${JSON.stringify(maxWindowLayers)}`);
    return none;
  }
  const types = r.hf.layer_types;
  let sliding: boolean[];
  if (types === undefined || types === null) {
    sliding = Array.from({ length: layers }, (_, i) => i >= maxWindowLayers);
  } else if (!Array.isArray(types) || types.length !== layers || types.some((x) => x !== 'full_attention' && x !== 'sliding_attention')) {
    r.p.add('layer_types', `expected ${layers} entries, each "full_attention" or "sliding_attention"`, types);
    return none;
  } else {
    sliding = types.map((x) => x === 'sliding_attention');
  }
  if (!on || window === null) return none;
  const w = window;
  const windows = sliding.map((s) => (s ? w : 0));
  return { slidingWindow: windows.some((x) => x > 0) ? w : null, windows };
}

function parseInto(json: unknown, p: ModelConfigProblems): ModelConfig | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    p.add('(config)', 'expected a JSON object');
    return undefined;
  }
  const hf = json as Record<string, unknown>;
  const r = new Reader(hf, p);
  const mt = hf.model_type;
  const expected = `expected one of ${MODEL_TYPES.map((m) => `"${m}"`).join(', ')}`;
  if (mt === undefined) {
    p.add('model_type', `missing key (${expected})`);
    return undefined;
  }
  if (typeof mt !== 'string' || !(MODEL_TYPES as readonly string[]).includes(mt)) {
    p.add('model_type', `unsupported model_type ${JSON.stringify(mt)} (${expected})`);
    return undefined;
  }
  const modelType = mt as ModelType;
  const defaults = DEFAULTS[modelType];
  const hiddenSize = r.positiveInt('hidden_size');
  const numAttentionHeads = r.positiveInt('num_attention_heads');
  const numKeyValueHeads = r.positiveInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    p.add('num_key_value_heads', `num_attention_heads (${numAttentionHeads}) is not divisible by num_key_value_heads (${numKeyValueHeads})`);
  }
  const hasHeadDim = hf.head_dim !== undefined && hf.head_dim !== null;
  if (!hasHeadDim && defaults.headDim === null && hiddenSize % numAttentionHeads !== 0) {
    p.add('hidden_size', `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}) and head_dim is not given`);
  }
  const headDim = r.positiveInt('head_dim', defaults.headDim ?? Math.max(1, Math.floor(hiddenSize / numAttentionHeads)));
  if (headDim % 2 !== 0) p.add('head_dim', `must be even for rotary embeddings, got ${headDim}`);
  const act = hf.hidden_act;
  if (act !== undefined && act !== 'silu') p.add('hidden_act', `unsupported activation ${JSON.stringify(act)} (only "silu")`);
  if (r.bool('mlp_bias', false)) p.add('mlp_bias', 'MLP biases are not supported');
  const dropout = hf.attention_dropout;
  if (dropout !== undefined && dropout !== null && dropout !== 0) {
    p.add('attention_dropout', 'attention dropout is not supported (training would differ from HF)', dropout, 'set it to 0.0');
  }
  const prf = hf.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    p.add('partial_rotary_factor', 'partial rotary embeddings are not supported (every head dimension rotates)', prf);
  }
  if (hf.original_max_position_embeddings !== undefined) {
    // transformers 4.x ignores a top-level original_max_position_embeddings for these models,
    // 5.x lets it override the rope's: the meaning depends on the version, so it is refused.
    p.add('original_max_position_embeddings', 'a top-level original_max_position_embeddings is ambiguous', hf.original_max_position_embeddings, 'move it into rope_scaling');
  }
  // Mistral has no attention_bias (HF ignores the key); qwen2 always has q/k/v biases.
  const attentionBias = modelType === 'llama' || modelType === 'qwen3' ? r.bool('attention_bias', false) : false;
  const initializerRange = hf.initializer_range === undefined ? INITIALIZER_RANGE : (hf.initializer_range as number);
  if (typeof initializerRange !== 'number' || !Number.isFinite(initializerRange) || initializerRange < 0) {
    p.add('initializer_range', `expected a non-negative number, got ${JSON.stringify(hf.initializer_range)}`);
  }
  const maxPositionEmbeddings = r.positiveInt('max_position_embeddings', defaults.maxPositionEmbeddings);
  const numHiddenLayers = r.positiveInt('num_hidden_layers');
  const { rope, theta } = parseRope(hf, maxPositionEmbeddings, p);
  let ropeTheta = r.positiveNumber('rope_theta', theta ?? ROPE_THETA);
  if (theta !== undefined && ropeTheta !== theta) {
    p.add('rope_parameters.rope_theta', `disagrees with rope_theta (${ropeTheta})`, theta, 'give one rope_theta');
    ropeTheta = theta;
  }
  const { slidingWindow, windows } = layerWindows(r, modelType, numHiddenLayers);
  return {
    modelType,
    vocabSize: r.positiveInt('vocab_size'),
    hiddenSize,
    intermediateSize: r.positiveInt('intermediate_size'),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    ropeTheta,
    rope,
    rmsNormEps: r.positiveNumber('rms_norm_eps', RMS_NORM_EPS),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2' ? true : attentionBias,
    oBias: attentionBias,
    qkNorm: modelType === 'qwen3',
    slidingWindow,
    layerWindows: windows,
    initializerRange,
    maxPositionEmbeddings,
    hf: { ...hf },
  };
}

/**
 * Every problem of an HF config object (empty when the engine computes it exactly as HF does).
 * For check-config and `up`, which list them all before anything starts.
 */
export function modelConfigProblems(json: unknown): ModelConfigProblem[] {
  const p = new ModelConfigProblems();
  parseInto(json, p);
  return p.list;
}

/** Validates an HF config object; `source` names it in error messages (e.g. the file path). */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  const p = new ModelConfigProblems();
  const c = parseInto(json, p);
  if (!c || !p.empty) throw new EngineError('ERR_CONFIG', `${source}: ${p.list.map(formatModelConfigProblem).join('; ')}`);
  return c;
}

/** Reads and validates a config.json file (ERR_FILE when missing, ERR_CONFIG when invalid). */
export async function readModelConfig(path: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw unreadable(path, e);
  }
  return parseModelConfigText(text, path);
}

/** readModelConfig for the checks that run before anything starts (synchronous). */
export function readModelConfigSync(path: string): ModelConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw unreadable(path, e);
  }
  return parseModelConfigText(text, path);
}

function unreadable(path: string, e: unknown): EngineError {
  return new EngineError('ERR_FILE', `cannot read model config ${path}: ${(e as Error).message}`, { cause: e });
}

function parseModelConfigText(text: string, path: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new EngineError('ERR_CONFIG', `${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseModelConfig(json, path);
}

/**
 * HF JSON for a config (the original keys, with the engine's values and the dtype the weights
 * are saved in: float32 unless told otherwise).
 */
export function toHfConfig(c: ModelConfig, torchDtype: 'float32' | 'bfloat16' = 'float32'): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...c.hf,
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    rope_theta: c.ropeTheta,
    rms_norm_eps: c.rmsNormEps,
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    max_position_embeddings: c.maxPositionEmbeddings,
    hidden_act: 'silu',
    torch_dtype: torchDtype,
  };
  if (c.modelType === 'llama' || c.modelType === 'qwen3') out.attention_bias = c.oBias;
  // Mistral's window defaults to 4096 when the key is absent: write what was computed.
  if (c.modelType === 'mistral') out.sliding_window = c.slidingWindow;
  if (out.rope_parameters !== undefined && out.rope_parameters !== null) {
    // transformers 5 keeps rope_theta inside rope_parameters: keep the two equal.
    out.rope_parameters = { ...(out.rope_parameters as Record<string, unknown>), rope_theta: c.ropeTheta };
  }
  return out;
}
