/**
 * Writing a model as a Hugging Face model directory in a chosen dtype, sharded the way
 * `save_pretrained(max_shard_size=...)` shards (huggingface_hub's rule: tensors in the model's
 * order; a tensor that would tip the current shard over the limit starts a new one; a tensor
 * larger than the limit gets a shard of its own): `model.safetensors` when everything fits in one
 * shard, else `model-00001-of-0000N.safetensors` ... with `model.safetensors.index.json`
 * ({metadata: {total_size}, weight_map}); `config.json` with `torch_dtype` set. bf16 and fp16 are
 * rounded to nearest even from the fp32 weights. Weight files of an earlier save in the
 * directory (model.safetensors, the index, model-*-of-*.safetensors) are removed so no loader
 * reads a mix. Must never leave the index pointing at a shard that is not written.
 */
import { readdir, rm, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import { toHfConfig, type ModelConfig } from '../modelConfig.js';
import type { ParamView } from '../nativeBinding.js';
import { toBf16 } from '../ops/matmul.js';
import { toF16 } from '../ops/f16.js';
import { writeSafetensors, type WritableTensor } from '../safetensors.js';

export type HfDType = 'float32' | 'bfloat16' | 'float16';
export const HF_DTYPES: readonly HfDType[] = ['float32', 'bfloat16', 'float16'];

const BYTES: Record<HfDType, number> = { float32: 4, bfloat16: 2, float16: 2 };
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

export interface HfExportOptions {
  dtype: HfDType;
  /** bytes per shard (HF's max_shard_size) */
  maxShardBytes: number;
}

export interface HfExportResult {
  /** files written, config.json first */
  files: string[];
  shards: number;
  /** bytes of tensor data */
  totalBytes: number;
}

/** huggingface_hub's split: names per shard, in the model's order. */
export function planShards(sizes: readonly { name: string; bytes: number }[], maxShardBytes: number): string[][] {
  const shards: string[][] = [];
  let cur: string[] = [];
  let curBytes = 0;
  for (const t of sizes) {
    if (t.bytes > maxShardBytes) {
      shards.push([t.name]);
      continue;
    }
    if (curBytes + t.bytes > maxShardBytes && cur.length > 0) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(t.name);
    curBytes += t.bytes;
  }
  if (cur.length > 0) shards.push(cur);
  return shards;
}

async function converted(v: ParamView, data: Float32Array, dtype: HfDType): Promise<WritableTensor> {
  if (dtype === 'float32') return { name: v.name, shape: v.shape, data };
  if (dtype === 'bfloat16') return { name: v.name, shape: v.shape, dtype: 'BF16', data: await toBf16(data) };
  return { name: v.name, shape: v.shape, dtype: 'F16', data: await toF16(data) };
}

export async function writeHfModel(dir: string, config: ModelConfig, views: readonly ParamView[], params: Float32Array, o: HfExportOptions): Promise<HfExportResult> {
  if (!HF_DTYPES.includes(o.dtype)) throw new EngineError('ERR_ARG', `writeHfModel: dtype must be one of ${HF_DTYPES.join(', ')}, got ${o.dtype}`);
  if (!(o.maxShardBytes > 0)) throw new EngineError('ERR_ARG', `writeHfModel: maxShardBytes must be > 0, got ${o.maxShardBytes}`);
  await mkdir(dir, { recursive: true });
  for (const f of await readdir(dir)) {
    if (f === 'model.safetensors' || f === 'model.safetensors.index.json' || SHARD_NAME.test(f)) await rm(join(dir, f), { force: true });
  }
  const byName = new Map(views.map((v) => [v.name, v]));
  const plan = planShards(views.map((v) => ({ name: v.name, bytes: v.numel * BYTES[o.dtype] })), o.maxShardBytes);
  const n = plan.length;
  const fileOf = (i: number) => (n === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  let totalBytes = 0;
  const cfg = toHfConfig(config);
  cfg.torch_dtype = o.dtype;
  // transformers 4.56+ names it `dtype`; keep both equal when the base config has it
  if ('dtype' in cfg) cfg.dtype = o.dtype;
  const cfgPath = join(dir, 'config.json');
  await writeAtomically(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
  files.push(cfgPath);
  for (let i = 0; i < n; i++) {
    const tensors: WritableTensor[] = [];
    for (const name of plan[i]!) {
      const v = byName.get(name)!;
      tensors.push(await converted(v, params.subarray(v.offset, v.offset + v.numel), o.dtype));
      weightMap[name] = fileOf(i);
      totalBytes += v.numel * BYTES[o.dtype];
    }
    const path = join(dir, fileOf(i));
    await writeSafetensors(path, tensors, { format: 'pt' });
    files.push(path);
  }
  if (n > 1) {
    const index = join(dir, 'model.safetensors.index.json');
    await writeAtomically(index, JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
    files.push(index);
  }
  return { files, shards: n, totalBytes };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
