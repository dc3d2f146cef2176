/**
 * The model a job names for inference and export: model_name_or_path's weights (required: a
 * directory with config.json alone has nothing to export or chat with) with every adapter of
 * adapter_name_or_path merged into them, in order, as LLaMA-Factory does for inference
 * (merge_and_unload). Bad input (no weights, an adapter PEFT wrote with settings this engine does
 * not compute, names or shapes that do not fit) is a ConfigError naming the key. Must never
 * change files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/ConfigError.js';
import type { JobConfig } from '../config/JobConfig.js';
import { isCodedError } from '../engine/errors.js';
import { Model, mergeAdapter, type MergedAdapter } from '../engine/model/index.js';
import { resolveModelDir } from './trainWorkload.js';

export interface MergedModel {
  model: Model;
  modelDir: string;
  adapters: { dir: string; merged: MergedAdapter }[];
}

const BAD_INPUT = new Set(['ERR_CONFIG', 'ERR_FILE', 'ERR_SAFETENSORS']);

export async function loadMergedModel(c: Pick<JobConfig, 'model_name_or_path' | 'adapter_name_or_path'>): Promise<MergedModel> {
  let modelDir: string;
  try {
    modelDir = resolveModelDir(c.model_name_or_path);
  } catch (e) {
    throw new ConfigError([{ key: 'model_name_or_path', value: c.model_name_or_path, message: (e as Error).message, fix: 'give a model directory holding config.json and model.safetensors' }]);
  }
  if (!existsSync(join(modelDir, 'model.safetensors')) && !existsSync(join(modelDir, 'model.safetensors.index.json'))) {
    throw new ConfigError([{ key: 'model_name_or_path', value: c.model_name_or_path, message: `${modelDir} holds no weights (model.safetensors or model.safetensors.index.json)`, fix: 'point it at a trained or downloaded model, or write weights with ulysses-actors init-model' }]);
  }
  const model = await asConfigError('model_name_or_path', c.model_name_or_path, () => Model.fromPretrained(modelDir));
  model.nameOrPath = c.model_name_or_path;
  const adapters: MergedModel['adapters'] = [];
  try {
    for (const dir of c.adapter_name_or_path ?? []) adapters.push({ dir, merged: await asConfigError('adapter_name_or_path', dir, () => mergeAdapter(model, dir)) });
  } catch (e) {
    model.close();
    throw e;
  }
  return { model, modelDir, adapters };
}

async function asConfigError<T>(key: string, value: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (isCodedError(e) && BAD_INPUT.has(e.code)) throw new ConfigError([{ key, value, message: e.message, fix: key === 'adapter_name_or_path' ? 'give PEFT LoRA adapter directories trained on this base model' : 'check the model directory' }]);
    throw e;
  }
}
