/**
 * LoRA adapters in PEFT's terms: the module names a `lora_target` may list, the options of
 * `Model.attachLora`, and PEFT's on-disk layout (`adapter_model.safetensors` with PEFT tensor names,
 * F32, plus `adapter_config.json`) for writing and validating adapters. The math lives natively
 * (native/src/model/lora.{h,cc}); this file only names, checks and serializes. Must never accept an
 * adapter whose names, shapes, rank, alpha or targets disagree with the model it is loaded into.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.js';
import type { ParamView } from './nativeBinding.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from './safetensors.js';

/** The linear modules of a decoder layer, in PEFT's (= the model's) order; bit i of the native mask. */
export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraModule = (typeof LORA_MODULES)[number];

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';

export interface LoraOptions {
  /** rank r (integer >= 1) */
  rank: number;
  /** scale numerator: the adapter adds (alpha / r) B A x (default 2 * rank, as LLaMA-Factory) */
  alpha?: number;
  /** dropout on the adapter input, in [0, 1) (default 0) */
  dropout?: number;
  /** `all` (the default) or module names from LORA_MODULES */
  targets?: 'all' | readonly string[];
  /** seed of A's initialization and of the dropout masks (default 0) */
  seed?: number;
}

/** Named views like the model's, over the flat adapter buffers. */
export type AdapterView = ParamView;

export interface ResolvedLora {
  rank: number;
  alpha: number;
  dropout: number;
  /** in LORA_MODULES order, no duplicates */
  targets: LoraModule[];
  seed: number;
}

/** Validates and completes LoraOptions (ERR_CONFIG naming the field). */
export function resolveLora(o: LoraOptions): ResolvedLora {
  const bad = (m: string) => new EngineError('ERR_CONFIG', `attachLora: ${m}`);
  if (!Number.isInteger(o.rank) || o.rank < 1) throw bad(`rank must be an integer >= 1, got ${o.rank}`);
  const alpha = o.alpha ?? 2 * o.rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw bad(`alpha must be a finite number > 0, got ${alpha}`);
  const dropout = o.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad(`dropout must be in [0, 1), got ${dropout}`);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw bad(`seed must be a non-negative integer, got ${seed}`);
  return { rank: o.rank, alpha, dropout, targets: resolveLoraTargets(o.targets ?? 'all'), seed };
}

/** `all` (or a list holding `all`) means every linear module; otherwise the listed ones, checked. */
export function resolveLoraTargets(t: 'all' | readonly string[]): LoraModule[] {
  const list = typeof t === 'string' ? [t] : [...t];
  if (list.length === 0) throw new EngineError('ERR_CONFIG', 'lora_target: no module given (use `all` or names like q_proj,v_proj)');
  if (list.includes('all')) return [...LORA_MODULES];
  for (const m of list) {
    if (!(LORA_MODULES as readonly string[]).includes(m)) {
      throw new EngineError('ERR_CONFIG', `lora_target: unknown module ${JSON.stringify(m)} (expected \`all\` or some of ${LORA_MODULES.join(', ')})`);
    }
  }
  return LORA_MODULES.filter((m) => list.includes(m));
}

export function targetMask(targets: readonly LoraModule[]): number {
  return targets.reduce((a, m) => a | (1 << LORA_MODULES.indexOf(m)), 0);
}

/** PEFT's adapter_config.json for a LoRA on a causal LM (the keys PEFT writes, plain LoRA values). */
export function adapterConfigJson(l: ResolvedLora, baseModelNameOrPath: string | null): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: l.alpha,
    lora_dropout: l.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: l.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...l.targets],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
  };
}

/** Reads adapter_config.json: the plain-LoRA subset this engine computes, or ERR_CONFIG naming the key. */
export async function readAdapterConfig(dir: string): Promise<Omit<ResolvedLora, 'seed'>> {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new EngineError('ERR_FILE', `${path}: cannot read the adapter config: ${(e as Error).message}`, { cause: e });
  }
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new EngineError('ERR_CONFIG', `${path}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
  const bad = (m: string) => new EngineError('ERR_CONFIG', `${path}: ${m}`);
  if (j.peft_type !== 'LORA') throw bad(`peft_type is ${JSON.stringify(j.peft_type)}, expected "LORA"`);
  if (!Number.isInteger(j.r) || (j.r as number) < 1) throw bad(`r must be an integer >= 1, got ${JSON.stringify(j.r)}`);
  if (typeof j.lora_alpha !== 'number' || !(j.lora_alpha > 0)) throw bad(`lora_alpha must be a number > 0, got ${JSON.stringify(j.lora_alpha)}`);
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad(`lora_dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  if (j.bias !== undefined && j.bias !== 'none') throw bad(`bias ${JSON.stringify(j.bias)} is not supported (only "none")`);
  if (j.fan_in_fan_out === true) throw bad('fan_in_fan_out true is not supported');
  for (const k of ['use_dora', 'use_rslora'] as const) if (j[k] === true) throw bad(`${k} is not supported (plain LoRA only)`);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = j[k];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Object.keys(v).length > 0)) throw bad(`${k} is not supported (one rank and alpha for every module)`);
  }
  const tm = j.target_modules;
  let targets: LoraModule[];
  try {
    if (typeof tm === 'string') targets = tm === 'all-linear' ? [...LORA_MODULES] : resolveLoraTargets([tm]);
    else if (Array.isArray(tm) && tm.every((x) => typeof x === 'string')) targets = resolveLoraTargets(tm as string[]);
    else throw new Error(`target_modules must be a list of module names, got ${JSON.stringify(tm)}`);
  } catch (e) {
    throw bad((e as Error).message);
  }
  return { rank: j.r as number, alpha: j.lora_alpha, dropout, targets };
}

/** Writes `dir/adapter_model.safetensors` (PEFT names, F32) and `dir/adapter_config.json`. */
export async function writeAdapter(dir: string, l: ResolvedLora, views: readonly AdapterView[], params: Float32Array, baseModelNameOrPath: string | null): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = views.map((v) => ({ name: v.name, shape: v.shape, data: params.subarray(v.offset, v.offset + v.numel) }));
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
  const tmp = join(dir, `${ADAPTER_CONFIG_FILE}.tmp-${process.pid}`);
  await writeFile(tmp, JSON.stringify(adapterConfigJson(l, baseModelNameOrPath), null, 2) + '\n');
  await rename(tmp, join(dir, ADAPTER_CONFIG_FILE));
}

/**
 * Fills `params` (the flat adapter buffer) from `dir/adapter_model.safetensors`. Every view must be
 * present with its exact shape, and the file may hold no other LoRA tensor (ERR_SAFETENSORS).
 * PEFT also writes names with an adapter suffix (`lora_A.default.weight`); both spellings are read.
 */
export async function readAdapterWeights(dir: string, views: readonly AdapterView[], params: Float32Array): Promise<void> {
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  const header = await readSafetensorsHeader(file);
  const plain = (n: string) => n.replace(/\.(lora_[AB])\.[^.]+\.weight$/, '.$1.weight');
  const byName = new Map<string, string>();
  for (const n of header.tensors.keys()) byName.set(plain(n), n);
  const expected = new Set(views.map((v) => v.name));
  for (const n of byName.keys()) {
    if (!expected.has(n)) throw new EngineError('ERR_SAFETENSORS', `${file}: tensor ${n} matches no adapter of this model (rank, targets or layer count differ?)`);
  }
  for (const v of views) {
    const stored = byName.get(v.name);
    if (!stored) throw new EngineError('ERR_SAFETENSORS', `${file}: missing tensor ${v.name}`);
    const e = header.tensors.get(stored)!;
    if (e.shape.length !== v.shape.length || e.shape.some((d, i) => d !== v.shape[i])) {
      throw new EngineError('ERR_SAFETENSORS', `${file}: tensor ${stored} has shape [${e.shape.join(', ')}], this model needs [${v.shape.join(', ')}]`);
    }
    await readTensorF32(header, stored, params.subarray(v.offset, v.offset + v.numel));
  }
}
