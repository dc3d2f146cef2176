/**
 * Hugging Face weight files of a model directory: `model.safetensors` or a sharded
 * `model.safetensors.index.json`, read into the flat parameter buffer by HF tensor name (F32, F16
 * or BF16 on disk), and `config.json` + `model.safetensors` (F32) written from it; the dtype a
 * config's weights are saved in (its torch_dtype: BF16 for bfloat16, as HF saves such models) and
 * the tensors in that dtype. Must never accept a tensor whose shape differs from the config's, or
 * a shard name that leaves the directory.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { toHfConfig, type ModelConfig } from '../modelConfig.js';
import type { ParamView } from '../nativeBinding.js';
import { toBf16 } from '../ops/matmul.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorsHeader, type WritableTensor } from '../safetensors.js';

const viewOf = (params: Float32Array, v: ParamView) => params.subarray(v.offset, v.offset + v.numel);

/**
 * The dtype HF would save this config's weights in: BF16 when config.json's torch_dtype is
 * bfloat16, else F32 (float16 checkpoints are read, but saved as F32: fp16 training is not done here).
 */
export function savedWeightDtype(config: ModelConfig): 'F32' | 'BF16' {
  return config.hf.torch_dtype === 'bfloat16' ? 'BF16' : 'F32';
}

/** The HF-named tensors of `params` in `dtype` (BF16: rounded to nearest even, natively). */
export async function weightTensors(views: readonly ParamView[], params: Float32Array, dtype: 'F32' | 'BF16'): Promise<WritableTensor[]> {
  const out: WritableTensor[] = [];
  for (const v of views) out.push(dtype === 'BF16' ? { name: v.name, shape: v.shape, dtype, data: await toBf16(viewOf(params, v)) } : { name: v.name, shape: v.shape, data: viewOf(params, v) });
  return out;
}

/** Writes `dir/config.json` and `dir/model.safetensors` (F32, HF names). */
export async function saveHfModel(dir: string, config: ModelConfig, views: readonly ParamView[], params: Float32Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = views.map((v) => ({ name: v.name, shape: v.shape, data: viewOf(params, v) }));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const tmp = join(dir, `config.json.tmp-${process.pid}`);
  await writeFile(tmp, JSON.stringify(toHfConfig(config), null, 2) + '\n');
  await rename(tmp, join(dir, 'config.json'));
}

/** Fills every view of `params` from a checkpoint directory (model.safetensors or a sharded index). */
export async function loadHfWeights(dir: string, views: readonly ParamView[], params: Float32Array): Promise<void> {
  const files = await weightFiles(dir);
  const headers = new Map<string, SafetensorsHeader>();
  for (const v of views) {
    const file = files.get(v.name);
    if (!file) throw new EngineError('ERR_SAFETENSORS', `${dir}: missing tensor ${v.name}`);
    let header = headers.get(file);
    if (!header) {
      header = await readSafetensorsHeader(file);
      headers.set(file, header);
    }
    const e = header.tensors.get(v.name);
    if (!e) throw new EngineError('ERR_SAFETENSORS', `${file}: missing tensor ${v.name}`);
    if (e.shape.length !== v.shape.length || e.shape.some((d, i) => d !== v.shape[i])) {
      throw new EngineError('ERR_SAFETENSORS', `${file}: tensor ${v.name} has shape [${e.shape.join(', ')}], the config needs [${v.shape.join(', ')}]`);
    }
    await readTensorF32(header, v.name, viewOf(params, v));
  }
}

/** Tensor name -> file, from model.safetensors.index.json when present, else model.safetensors. */
export async function weightFiles(dir: string): Promise<Map<string, string>> {
  const index = join(dir, 'model.safetensors.index.json');
  const map = new Map<string, string>();
  if (existsSync(index)) {
    let json: { weight_map?: Record<string, string> };
    try {
      json = JSON.parse(await readFile(index, 'utf8'));
    } catch (e) {
      throw new EngineError('ERR_SAFETENSORS', `${index}: invalid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!json.weight_map || typeof json.weight_map !== 'object') throw new EngineError('ERR_SAFETENSORS', `${index}: missing weight_map`);
    for (const [name, file] of Object.entries(json.weight_map)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
        throw new EngineError('ERR_SAFETENSORS', `${index}: tensor ${name}: bad shard file name ${JSON.stringify(file)}`);
      }
      map.set(name, join(dir, file));
    }
    return map;
  }
  const file = join(dir, 'model.safetensors');
  const header = await readSafetensorsHeader(file);
  for (const name of header.tensors.keys()) map.set(name, file);
  return map;
}
