/**
 * Hugging Face `config.json` for the Llama family (model_type llama or qwen2): parsing with
 * validation (ERR_CONFIG naming the key and the problem) into the engine's ModelConfig, and back
 * into HF JSON for saving. Must never guess silently: unsupported features (rope scaling, other
 * activations, other model types) are refused rather than computed differently from HF.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { EngineError } from './errors.js';

export type ModelType = 'llama' | 'qwen2';

export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  /** Biases on q/k/v projections (qwen2 always; llama with attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj (llama with attention_bias). */
  oBias: boolean;
  initializerRange: number;
  maxPositionEmbeddings: number;
  /** The JSON it was parsed from (kept so saving preserves keys this engine does not use). */
  hf: Record<string, unknown>;
}

function fail(source: string, key: string, problem: string): never {
  throw new EngineError('ERR_CONFIG', `${source}: ${key}: ${problem}`);
}

function positiveInt(hf: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const v = hf[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    fail(source, key, 'missing key');
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(source, key, `expected a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function positiveNumber(hf: Record<string, unknown>, key: string, source: string, fallback: number): number {
  const v = hf[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(source, key, `expected a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(hf: Record<string, unknown>, key: string, source: string, fallback: boolean): boolean {
  const v = hf[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') fail(source, key, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates an HF config object; `source` names it in error messages (e.g. the file path). */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new EngineError('ERR_CONFIG', `${source}: expected a JSON object`);
  }
  const hf = json as Record<string, unknown>;
  const modelType = hf.model_type;
  if (modelType === undefined) fail(source, 'model_type', 'missing key (expected "llama" or "qwen2")');
  if (modelType !== 'llama' && modelType !== 'qwen2') {
    fail(source, 'model_type', `unsupported model_type ${JSON.stringify(modelType)} (expected "llama" or "qwen2")`);
  }
  const hiddenSize = positiveInt(hf, 'hidden_size', source);
  const numAttentionHeads = positiveInt(hf, 'num_attention_heads', source);
  const numKeyValueHeads = positiveInt(hf, 'num_key_value_heads', source, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(source, 'num_key_value_heads', `num_attention_heads (${numAttentionHeads}) is not divisible by num_key_value_heads (${numKeyValueHeads})`);
  }
  if (hf.head_dim === undefined && hiddenSize % numAttentionHeads !== 0) {
    fail(source, 'hidden_size', `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}) and head_dim is not given`);
  }
  const headDim = positiveInt(hf, 'head_dim', source, hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) fail(source, 'head_dim', `must be even for rotary embeddings, got ${headDim}`);
  const act = hf.hidden_act;
  if (act !== undefined && act !== 'silu') fail(source, 'hidden_act', `unsupported activation ${JSON.stringify(act)} (only "silu")`);
  const scaling = hf.rope_scaling as { rope_type?: unknown; type?: unknown } | null | undefined;
  if (scaling !== undefined && scaling !== null) {
    const kind = scaling.rope_type ?? scaling.type;
    if (kind !== 'default') fail(source, 'rope_scaling', `unsupported rope scaling ${JSON.stringify(kind)} (only plain RoPE)`);
  }
  if (bool(hf, 'mlp_bias', source, false)) fail(source, 'mlp_bias', 'MLP biases are not supported');
  const attentionBias = bool(hf, 'attention_bias', source, false);
  const initializerRange = hf.initializer_range === undefined ? 0.02 : (hf.initializer_range as number);
  if (typeof initializerRange !== 'number' || !Number.isFinite(initializerRange) || initializerRange < 0) {
    fail(source, 'initializer_range', `expected a non-negative number, got ${JSON.stringify(hf.initializer_range)}`);
  }
  return {
    modelType,
    vocabSize: positiveInt(hf, 'vocab_size', source),
    hiddenSize,
    intermediateSize: positiveInt(hf, 'intermediate_size', source),
    numHiddenLayers: positiveInt(hf, 'num_hidden_layers', source),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    ropeTheta: positiveNumber(hf, 'rope_theta', source, 10000),
    rmsNormEps: positiveNumber(hf, 'rms_norm_eps', source, 1e-6),
    tieWordEmbeddings: bool(hf, 'tie_word_embeddings', source, false),
    qkvBias: modelType === 'qwen2' ? true : attentionBias,
    oBias: modelType === 'llama' && attentionBias,
    initializerRange,
    maxPositionEmbeddings: positiveInt(hf, 'max_position_embeddings', source, 131072),
    hf: { ...hf },
  };
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

/** HF JSON for a config (the original keys, with the engine's values and float32 dtype). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
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
    torch_dtype: 'float32',
  };
  if (c.modelType === 'llama') out.attention_bias = c.qkvBias;
  return out;
}
