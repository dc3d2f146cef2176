/**
 * `ulysses-actors export job.yaml [--KEY VALUE ...]`: `llamafactory-cli export` for this engine.
 * Reads the same YAML keys (model_name_or_path, adapter_name_or_path, template, export_dir,
 * export_size, export_device, export_legacy_format, infer_dtype), merges the adapters into the
 * base and writes an HF model directory (train/exportModel.ts). Bad input exits 2 before
 * anything is written; the printed summary names every file. Never trains and never writes
 * outside export_dir.
 */
import { formatIgnored, resolveJob } from '../../config/index.js';
import { exportModel } from '../../train/exportModel.js';

const HELP = `usage: ulysses-actors export job.yaml [--KEY VALUE ...]
  Merges the LoRA adapters of adapter_name_or_path (comma separated, in order) into
  model_name_or_path, W + (lora_alpha / r) B A in fp32, and writes export_dir as a Hugging Face
  model directory: config.json, model.safetensors (or export_size GB shards with
  model.safetensors.index.json), the base's tokenizer files and generation_config.json.
  Keys (LLaMA-Factory's): export_dir (required), export_size (GB, default 5), infer_dtype
  (auto | bfloat16 | float16 | float32; auto: the base config's torch_dtype, bfloat16 for float32),
  export_device (accepted; the CPU merges), export_legacy_format (true is refused: safetensors only),
  export_quantization_bit and export_hub_model_id (refused). Flags override the file: --export_dir out/.`;

function size(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(2)} MB`;
}

export async function exportCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { job, ignored } = resolveJob(argv, { env: process.env });
  const note = formatIgnored(ignored);
  if (note) process.stderr.write(note + '\n');
  const c = job.config;
  const t0 = performance.now();
  const r = await exportModel(c);
  const merged = r.adapters.map((a) => `${a.dir} (r=${a.merged.rank}, alpha=${a.merged.alpha}, ${a.merged.tensors} weights)`);
  const lines = [
    `exported ${c.model_name_or_path}${merged.length ? ` + ${merged.join(' + ')}` : ''} to ${r.exportDir}: ${r.parameters} parameters, ${r.dtype}, ${r.shards} shard${r.shards === 1 ? '' : 's'} (${size(r.totalBytes)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    ...r.files.map((f) => `  ${f}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}
