/**
 * `llamafactory-cli export` for this engine: the base model with its adapters merged (fp32 math,
 * mergedModel.ts), converted to the export dtype (infer_dtype; auto: the base config's torch_dtype,
 * bfloat16 when that is float32 or absent, as LLaMA-Factory decides on a CPU), written as an HF
 * model directory in export_size GB shards (hfExport.ts), with the base's tokenizer files and
 * generation_config.json. What it cannot do is refused before anything is read: no export_dir,
 * PyTorch .bin files, quantization, a hub push. export_device has no effect (the CPU does it).
 * Must never write outside export_dir.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, type ConfigProblem } from '../config/ConfigError.js';
import type { JobConfig } from '../config/JobConfig.js';
import { writeHfModel, type HfDType, type MergedAdapter } from '../engine/model/index.js';
import { loadMergedModel } from './mergedModel.js';
import { copyTokenizerFiles } from './tokenizer/tokenizerFiles.js';

export type ExportConfig = Pick<
  JobConfig,
  'model_name_or_path' | 'adapter_name_or_path' | 'export_dir' | 'export_size' | 'export_legacy_format' | 'export_quantization_bit' | 'export_hub_model_id' | 'infer_dtype'
>;

export interface ExportReport {
  exportDir: string;
  dtype: HfDType;
  /** weights, config.json, index, tokenizer files */
  files: string[];
  shards: number;
  totalBytes: number;
  parameters: number;
  adapters: { dir: string; merged: MergedAdapter }[];
}

/** Every export key that asks for something not done here. */
export function exportProblems(c: ExportConfig): ConfigProblem[] {
  const p: ConfigProblem[] = [];
  if (c.export_dir === null) p.push({ key: 'export_dir', message: 'is needed: where the exported model goes', fix: 'e.g. export_dir: output/merged' });
  if (c.export_legacy_format) p.push({ key: 'export_legacy_format', value: true, message: 'PyTorch .bin files are not written here', fix: 'remove it (or false): the weights are written as safetensors' });
  if (c.export_quantization_bit !== null) p.push({ key: 'export_quantization_bit', value: c.export_quantization_bit, message: 'quantized export is not implemented', fix: 'remove it; export in bfloat16, float16 or float32 (infer_dtype)' });
  if (c.export_hub_model_id !== null) p.push({ key: 'export_hub_model_id', value: c.export_hub_model_id, message: 'there is no model hub access here', fix: 'remove it and upload export_dir yourself' });
  return p;
}

/** infer_dtype resolved: auto follows the base config's torch_dtype (or dtype), bfloat16 for float32 or none. */
export function exportDtype(inferDtype: JobConfig['infer_dtype'], baseConfig: Record<string, unknown>): HfDType {
  if (inferDtype !== 'auto') return inferDtype;
  const d = baseConfig.torch_dtype ?? baseConfig.dtype;
  return d === 'float16' || d === 'bfloat16' ? d : 'bfloat16';
}

export async function exportModel(c: ExportConfig): Promise<ExportReport> {
  const problems = exportProblems(c);
  if (problems.length) throw new ConfigError(problems);
  const exportDir = c.export_dir!;
  const { model, modelDir, adapters } = await loadMergedModel(c);
  try {
    if (resolve(exportDir) === resolve(modelDir)) {
      throw new ConfigError([{ key: 'export_dir', value: exportDir, message: 'is the base model directory itself (its weights would be replaced)', fix: 'export into another directory' }]);
    }
    const base = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const dtype = exportDtype(c.infer_dtype, base);
    const w = await writeHfModel(exportDir, model.config, model.views, model.params, { dtype, maxShardBytes: c.export_size * 1e9 });
    const tok = await copyTokenizerFiles(modelDir, exportDir);
    return { exportDir, dtype, files: [...w.files, ...tok.map((f) => join(exportDir, f))], shards: w.shards, totalBytes: w.totalBytes, parameters: model.numParams, adapters };
  } finally {
    model.close();
  }
}
