// The ZeRO stage 3 job tests' jobs (zero3Stages, zero3LoraRm): a short job of any training stage
// on the SP equivalence model, run through the coordinator, and the comparison of its metrics rows
// with another run's.
import type { Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCoordinatedJob } from './coordinatedJob.js';

/** 11 alpaca rows of different lengths in root/sft.jsonl; returns the path. */
export function writeSftRows(root: string): string {
  const rows = Array.from({ length: 11 }, (_, i) => ({ instruction: `Say ${i} in words, then count on.`, input: '', output: `number ${i}, ${'and more '.repeat(1 + (i % 3))}${i + 1}.` }));
  const path = join(root, 'sft.jsonl');
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

/**
 * Four optimizer steps of `stage` at lr 1e-2 with a checkpoint at step 2 (batch 2, no shuffling);
 * `evaluate`: 3 held-out items over the replicas every 2 steps (one replica evaluates 2, the other
 * 1, and a filler under stage 3).
 */
export function zeroJobLines(stage: string, model: string, data: string, sp: number, o: { finetuning?: 'full' | 'lora'; evaluate?: boolean } = {}): string[] {
  return [
    `model_name_or_path: ${model}`, `stage: ${stage}`, `finetuning_type: ${o.finetuning ?? 'full'}`, `dataset: ${data}`, 'cutoff_len: 64',
    ...(o.finetuning === 'lora' ? ['lora_rank: 4', 'lora_alpha: 8', 'lora_target: all'] : []),
    ...(stage === 'dpo' || stage === 'kto' ? ['pref_beta: 0.5'] : []),
    ...(stage === 'kto' ? ['kto_chosen_weight: 1.2', 'kto_rejected_weight: 0.8', 'pref_ftx: 0.3'] : []),
    'logging_steps: 1', 'save_steps: 2', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant',
    'per_device_train_batch_size: 2', 'disable_shuffling: true', `sequence_parallel_size: ${sp}`,
    ...((o.evaluate ?? true) ? ['val_size: 3', 'eval_strategy: steps', 'eval_steps: 2', 'per_device_eval_batch_size: 2', 'do_eval: true'] : []),
  ];
}

/** Runs `lines` + `extra` as job `name` in root/name on `world` ranks; checks it finished and ran `steps`. */
export async function runZeroJob(t: Test, root: string, name: string, lines: string[], world: number, extra: string[], steps = [1, 2, 3, 4]) {
  const dir = join(root, name);
  const r = await runCoordinatedJob(name, [...lines, `output_dir: ${dir}`, ...extra].join('\n'), world);
  t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'finished')}`);
  t.same(r.metrics.filter((m) => m.loss !== undefined).map((m) => m.step), steps, `${name}: steps ${steps.join(', ')}`);
  return { ...r, dir };
}

/** Every numeric key the rows share, but the clocks. */
const mathKeys = (row: Record<string, unknown>) => Object.keys(row).filter((k) => typeof row[k] === 'number' && k !== 'step' && !/time|per_s|per_second|elapsed|_ms$|_s$|rss|memory/.test(k));

/**
 * Checks that `got` has `want`'s rows, the same policy states, and every numeric value within
 * `rtol` of max(1, |value|), naming the worst; `evaluations`: some of them are eval_ values.
 */
export function sameRows(t: Test, got: Record<string, unknown>[], want: Record<string, unknown>[], what: string, rtol: number, evaluations = true): void {
  t.same(got.map((m) => m.step), want.map((m) => m.step), `${what}: the same rows`);
  t.same(got.map((m) => m.policy_state), want.map((m) => m.policy_state), `${what}: the same policy states`);
  let worst = 0, where = '', compared = 0, evals = 0;
  for (const [i, w] of want.entries()) {
    for (const k of mathKeys(w)) {
      const g = got[i]![k] as number | undefined, x = w[k] as number;
      compared++;
      if (k.startsWith('eval_')) evals++;
      const e = g === undefined ? Infinity : Math.abs(g - x) / Math.max(1, Math.abs(x));
      if (!(e <= worst)) [worst, where] = [e, `${k} at step ${String(w.step)}: ${g} vs ${x}`];
    }
  }
  if (evaluations) t.ok(evals > 0, `${what}: ${evals} evaluation values among them`);
  t.ok(compared > 0 && worst <= rtol, `${what}: ${compared} values within ${rtol} of max(1, |value|) (worst ${worst.toExponential(2)}${where ? `, ${where}` : ''})`);
}
