// ZeRO stage 3 beyond pt/sft training (REFERENCE §8): held-out evaluation, dpo and kto. Every
// forward of a sharded model gathers over the world, so a replica whose share of a held-out set
// is an item short forwards item 0 once more at its end, not counted; the frozen reference of
// full-FT dpo/kto is sharded like the parameters, over communicators of its own;
// precompute_ref_log_probs scores with the sharded model. As real jobs on loopback (coordinator,
// rank processes, Gloo) with 3 held-out items over 2 replicas: stage 3 gives stage 0's plans,
// its training and evaluation rows (1e-5 relative, absolute below 1: rewards are differences of
// close log-probs) and its final weights (2e-5 relative to each tensor's largest value). Those
// steps hold several sequences per rank (a batch of 2, a pair's two sides, kto's KL sequences):
// stage 3 adds each sequence's world sum into the part where stage 0 adds a rank's sequences
// first, and four AdamW steps at lr 1e-2 carry that rounding to about 1e-5 of the weights (one
// sequence per rank and step is within 1e-6: zero3.test.ts). With the reference precomputed the
// rows and weights are bitwise those of the resident sharded reference.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { weightsDiff, writeKtoRows, writeSpModel, writeSpPairs } from './helpers/spJob.js';

const ROWS_RTOL = 1e-5;
const WEIGHTS_RTOL = 2e-5;


function writeSftRows(root: string): string {
  const rows = Array.from({ length: 11 }, (_, i) => ({ instruction: `Say ${i} in words, then count on.`, input: '', output: `number ${i}, ${'and more '.repeat(1 + (i % 3))}${i + 1}.` }));
  const path = join(root, 'sft.jsonl');
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

function jobLines(stage: string, model: string, data: string, sp: number): string[] {
  return [
    `model_name_or_path: ${model}`, `stage: ${stage}`, 'finetuning_type: full', `dataset: ${data}`, 'cutoff_len: 64',
    ...(stage === 'sft' ? [] : ['pref_beta: 0.5']),
    ...(stage === 'kto' ? ['kto_chosen_weight: 1.2', 'kto_rejected_weight: 0.8', 'pref_ftx: 0.3'] : []),
    'logging_steps: 1', 'save_steps: 2', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant',
    'per_device_train_batch_size: 2', 'disable_shuffling: true', `sequence_parallel_size: ${sp}`,
    // 3 held-out items over 2 replicas: one replica evaluates 2, the other 1 (and a filler under stage 3)
    'val_size: 3', 'eval_strategy: steps', 'eval_steps: 2', 'per_device_eval_batch_size: 2', 'do_eval: true',
  ];
}

/** Every numeric key the rows share, but the clocks. */
const mathKeys = (row: Record<string, unknown>) => Object.keys(row).filter((k) => typeof row[k] === 'number' && k !== 'step' && !/time|per_s|per_second|elapsed|_ms$|_s$|rss|memory/.test(k));

function sameRows(t: Test, got: Record<string, number>[], want: Record<string, number>[], what: string): void {
  t.same(got.map((m) => m.step), want.map((m) => m.step), `${what}: the same rows`);
  let worst = 0, where = '', compared = 0, evals = 0;
  for (const [i, w] of want.entries()) {
    for (const k of mathKeys(w)) {
      const g = got[i]![k];
      compared++;
      if (k.startsWith('eval_')) evals++;
      const e = g === undefined ? Infinity : Math.abs(g - w[k]!) / Math.max(1, Math.abs(w[k]!));
      if (!(e <= worst)) [worst, where] = [e, `${k} at step ${w.step}: ${g} vs ${w[k]}`];
    }
  }
  t.ok(evals > 0, `${what}: ${evals} evaluation values among them`);
  t.ok(compared > 0 && worst <= ROWS_RTOL, `${what}: ${compared} values within ${ROWS_RTOL} of max(1, |value|) (worst ${worst.toExponential(2)}${where ? `, ${where}` : ''})`);
}

async function run(t: Test, root: string, name: string, lines: string[], world: number, extra: string[]) {
  const dir = join(root, name);
  const r = await runCoordinatedJob(name, [...lines, `output_dir: ${dir}`, ...extra].join('\n'), world);
  t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'finished')}`);
  t.same(r.metrics.filter((m) => m.loss !== undefined).map((m) => m.step), [1, 2, 3, 4], `${name}: four steps`);
  return { ...r, dir };
}

const cases = [
  { stage: 'sft', world: 2, sp: 1, data: writeSftRows },
  { stage: 'dpo', world: 2, sp: 1, data: (root: string) => writeSpPairs(root) },
  { stage: 'kto', world: 4, sp: 2, data: (root: string) => writeKtoRows(root, 11) },
] as const;

for (const c of cases) {
  t.test(`zero_stage 3, ${c.stage}, world ${c.world} (sp ${c.sp}) with 3 held-out items: stage 0's rows, evaluation and weights`, async (t) => {
    const root = t.testdir();
    const lines = jobLines(c.stage, writeSpModel(root), c.data(root), c.sp);
    const z0 = await run(t, root, 'z0', lines, c.world, ['zero_stage: 0']);
    const z3 = await run(t, root, 'z3', lines, c.world, ['zero_stage: 3']);
    t.same(z3.planDigests, z0.planDigests, 'every rank\'s plan digest equal to stage 0');
    sameRows(t, z3.metrics, z0.metrics, 'stage 3 against stage 0');
    const w = await weightsDiff(z0.dir, z3.dir);
    t.ok(w <= WEIGHTS_RTOL, `final weights within ${w.toExponential(2)} <= ${WEIGHTS_RTOL} of stage 0`);
    if (c.stage !== 'sft') {
      // the reference's sums scored once by the sharded model, no reference copy loaded
      const pre = await run(t, root, 'z3pre', lines, c.world, ['zero_stage: 3', 'precompute_ref_log_probs: true']);
      sameRows(t, pre.metrics, z3.metrics, 'precomputed reference against the resident sharded one');
      t.same(pre.result.finalHashes, z3.result.finalHashes, 'precomputed: bitwise the weights of the resident sharded reference');
    }
  });
}
