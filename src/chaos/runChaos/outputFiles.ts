/**
 * The files a user checks after a run, with their sha256: the final model in output_dir
 * (`model.safetensors`, or a LoRA run's `adapter_model.safetensors`, with `config.json` /
 * `adapter_config.json`) and every file of the newest checkpoint. A run with faults must end
 * with exactly these files, bit for bit, as the run without. Reads only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const FINAL_FILES = ['model.safetensors', 'config.json', 'adapter_model.safetensors', 'adapter_config.json'];

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The newest `checkpoint-<step>` directory's name, or null. */
export function newestCheckpointName(outputDir: string): string | null {
  let names: string[];
  try {
    names = readdirSync(outputDir);
  } catch {
    return null;
  }
  const steps = names.map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1]));
  return steps.length ? `checkpoint-${Math.max(...steps)}` : null;
}

/** sha256 of the final model files and of every file of the newest checkpoint, by path relative to output_dir. */
export async function outputFileHashes(outputDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of FINAL_FILES) if (existsSync(join(outputDir, f))) out[f] = await sha256(join(outputDir, f));
  const ckpt = newestCheckpointName(outputDir);
  if (ckpt) {
    for (const f of readdirSync(join(outputDir, ckpt)).sort()) {
      const p = join(outputDir, ckpt, f);
      if (statSync(p).isFile()) out[`${ckpt}/${f}`] = await sha256(p);
    }
  }
  return out;
}

/** What differs between two such maps ('' when they are equal and not empty). */
export function compareFiles(got: Record<string, string>, want: Record<string, string>): string {
  const names = [...new Set([...Object.keys(got), ...Object.keys(want)])].sort();
  if (names.length === 0) return 'no final model and no checkpoint to compare';
  const diff = names.filter((n) => got[n] !== want[n]).map((n) => (got[n] === undefined ? `${n} missing` : want[n] === undefined ? `${n} not in the fault-free run` : `${n} differs`));
  return diff.join(', ');
}
