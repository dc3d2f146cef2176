// The sp 1 vs sp 2 equivalence tests' jobs: their model, and the same job run through the
// coordinator with sequence_parallel_size 1 and 2 (one data-parallel replica each).
import type { Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../../src/engine/safetensors.js';
import { runCoordinatedJob } from './coordinatedJob.js';
import { writeMicroModelDir } from './trainFixtures.js';

/** `yaml`: the job's lines without output_dir and sequence_parallel_size (added here). */
function runSpJob(root: string, name: string, sp: number, yaml: string[]) {
  const text = [...yaml, `output_dir: ${join(root, name)}`, `sequence_parallel_size: ${sp}`].join('\n');
  return runCoordinatedJob(name, text, sp);
}

/**
 * Writes the equivalence tests' model (a small GQA Llama: 2 kv heads split over 2 ranks; with
 * `kvHeads: 4` every head has its own kv head, so 4 ranks can split them) to
 * root/model/config.json (random weights from the job's seed) and returns the directory.
 */
export function writeSpModel(root: string, o: { kvHeads?: 2 | 4 } = {}): string {
  return writeMicroModelDir(root, { vocab_size: 260, num_key_value_heads: o.kvHeads ?? 2 });
}

/**
 * The same job at each degree of `sps` (one data-parallel replica each; `yaml` as for
 * runSpJob); checks that each succeeded and logged every one of `steps` steps, and returns them
 * in the order of `sps`.
 */
export async function runSpDegrees(t: Test, root: string, yaml: string[], steps: number, sps: readonly number[]) {
  const want = Array.from({ length: steps }, (_, i) => i + 1);
  const out = [];
  for (const sp of sps) {
    const r = await runSpJob(root, `sp${sp}`, sp, yaml);
    t.equal(r.result.ok, true, `sp ${sp}: ${String(r.result.reason)}`);
    t.same(r.metrics.map((m) => m.step), want, `sp ${sp}: every step logged`);
    out.push(r);
  }
  return out;
}

/**
 * Checks that every job of `runs` logged `keys` at every step as the first one did, within 1e-4
 * relative (1e-3 absolute floor: values that are 0 in exact arithmetic), naming the worst.
 */
export function sameMetrics(t: Test, runs: { metrics: Record<string, number>[] }[], keys: readonly string[], names: readonly string[]): void {
  const [base, ...rest] = runs;
  for (const k of keys) {
    t.ok(base!.metrics.every((m) => Number.isFinite(m[k])), `${k} logged at every step`);
    for (const [j, r] of rest.entries()) {
      const worst = Math.max(...base!.metrics.map((m, i) => Math.abs(r.metrics[i]![k]! - m[k]!) / Math.max(1e-3, Math.abs(m[k]!))));
      t.ok(worst < 1e-4, `${k}: ${names[j + 1]} agrees with ${names[0]} at every step, worst difference ${worst.toExponential(3)} (${names[0]}: ${base!.metrics.map((m) => Number(m[k]).toFixed(6)).join(', ')})`);
    }
  }
}

/**
 * Writes the DPO equivalence jobs' preference pairs to root/pairs.jsonl and returns the path:
 * responses of different lengths, so shards split prompts and responses at different places.
 */
/** `n` KTO rows (LLaMA-Factory's kto_tag format, alternately desirable) in root/kto.jsonl; returns the path. */
export function writeKtoRows(root: string, n = 8): string {
  const rows = Array.from({ length: n }, (_, i) => ({
    instruction: `Question ${i}: what comes after ${i * 3}?`,
    output: (i % 2 === 1 ? `I think it is ${i * 5} or so` : `${i * 3 + 1}, because counting goes up by one.`).slice(0, 11 + 2 * i),
    kto_tag: i % 2 === 0,
  }));
  const path = join(root, 'kto.jsonl');
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

const maxAbs = (x: Float32Array) => x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

/**
 * The largest difference of two output dirs' final weights (`file`: model.safetensors, or e.g.
 * adapter_model.safetensors), relative to each tensor's largest value.
 */
export async function weightsDiff(a: string, b: string, file = 'model.safetensors'): Promise<number> {
  const [x, y] = [await readSafetensors(join(a, file)), await readSafetensors(join(b, file))];
  let worst = 0;
  for (const [k, w] of x.tensors) {
    const v = y.tensors.get(k)!.data;
    const mx = Math.max(maxAbs(w.data), 1e-30);
    for (let i = 0; i < w.data.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w.data[i]!) / mx);
  }
  return worst;
}

export function writeSpPairs(root: string): string {
  const rows = Array.from({ length: 8 }, (_, i) => ({
    instruction: `Question ${i}: what comes after ${i * 3}?`,
    input: '',
    chosen: `${i * 3 + 1}, because counting goes up by one.`.slice(0, 12 + i),
    rejected: `I think it is ${i * 5} or so`.slice(0, 20 - i),
  }));
  const path = join(root, 'pairs.jsonl');
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

/**
 * The same job at sp 1 and at sp 2 (`yaml` as for runSpJob, with max_steps `steps` and a
 * metrics row per step); checks that both succeeded and logged every step, and returns both.
 */
export async function runSp1AndSp2(t: Test, root: string, yaml: string[], steps: number) {
  const one = await runSpJob(root, 'sp1', 1, yaml);
  const two = await runSpJob(root, 'sp2', 2, yaml);
  const want = Array.from({ length: steps }, (_, i) => i + 1);
  t.equal(one.result.ok, true, String(one.result.reason));
  t.equal(two.result.ok, true, String(two.result.reason));
  t.same(one.metrics.map((m) => m.step), want);
  t.same(two.metrics.map((m) => m.step), want);
  return { one, two };
}
