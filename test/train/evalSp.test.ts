// Evaluation through the coordinator, as `up` runs it: the same sft job with val_size and
// eval_strategy steps under sequence_parallel_size 1 and 2 writes the same eval_loss and
// eval_accuracy rows to metrics.jsonl (after the rows of their steps), job.eval events to
// events.ndjson, and with do_eval an eval_results.json in HF's layout; the same for a dpo job's
// eval loss and rewards. Under SP every rank holds part of every held-out sequence, so the figures
// agree only if the loss sums and token counts are added over the SP group first.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { writeSpModel } from './helpers/spJob.js';

type Row = Record<string, number>;

async function runBoth(root: string, yaml: string[]) {
  const run = (sp: number) => runCoordinatedJob(`sp${sp}`, [...yaml, `output_dir: ${join(root, `sp${sp}`)}`, `sequence_parallel_size: ${sp}`].join('\n'), sp);
  return { one: await run(1), two: await run(2) };
}

const evalRows = (rows: Row[]) => rows.filter((r) => 'eval_loss' in r);

t.test('sft: eval loss and accuracy under SP 2 equal SP 1, logged as metrics.jsonl rows and events', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const rows = Array.from({ length: 14 }, (_, i) => ({ instruction: `Count from ${i} by ${1 + (i % 3)}`, input: '', output: Array.from({ length: 4 + (i % 5) }, (_, k) => String(i + k * (1 + (i % 3)))).join(' ') }));
  writeFileSync(join(root, 'count.json'), JSON.stringify(rows));
  const { one, two } = await runBoth(root, [
    `model_name_or_path: ${model}`, 'stage: sft', 'finetuning_type: full', `dataset: ${join(root, 'count.json')}`, 'cutoff_len: 64',
    'val_size: 4', 'eval_strategy: steps', 'eval_steps: 2', 'per_device_eval_batch_size: 3', 'compute_accuracy: true', 'do_eval: true',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'seed: 3',
  ]);
  t.equal(one.result.ok, true, `sp 1 succeeded ${one.result.reason ?? ''}`);
  t.equal(two.result.ok, true, `sp 2 succeeded ${two.result.reason ?? ''}`);
  const e1 = evalRows(one.metrics);
  const e2 = evalRows(two.metrics);
  t.same(e1.map((r) => r.step), [2, 4], 'evaluated after steps 2 and 4');
  t.same(e2.map((r) => r.step), [2, 4]);
  for (const k of ['eval_loss', 'eval_accuracy']) {
    const worst = Math.max(...e1.map((r, i) => Math.abs(e2[i]![k]! - r[k]!) / Math.max(1e-6, Math.abs(r[k]!))));
    t.ok(worst < 1e-5, `${k}: sp 2 = sp 1 (worst relative difference ${worst.toExponential(2)}; sp 1: ${e1.map((r) => r[k]).join(', ')})`);
  }
  t.ok(e1[1]!.eval_loss! < e1[0]!.eval_loss!, `the held-out loss falls (${e1.map((r) => r.eval_loss).join(' -> ')})`);
  t.same(one.metrics.filter((r) => 'loss' in r).length, 4, 'the step rows are all there');
  // in the file, each eval row comes after its step's row
  const file = readFileSync(join(root, 'sp2', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Row);
  const at = (p: (r: Row) => boolean) => file.findIndex(p);
  t.ok(at((r) => r.step === 2 && 'eval_loss' in r) > at((r) => r.step === 2 && 'loss' in r), 'the eval row of step 2 follows the step row');
  for (const k of ['epoch', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']) t.ok(k in e2[0]!, `HF's ${k} is in the row`);
  const events = readFileSync(join(root, 'sp2', 'events.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step?: number; metrics?: Row });
  const ev = events.filter((e) => e.type === 'job.eval');
  t.same(ev.map((e) => e.step), [2, 4], 'job.eval events in events.ndjson');
  t.equal(ev[1]!.metrics!.eval_loss, e2[1]!.eval_loss);
  // do_eval: the last step was just evaluated, so eval_results.json holds those figures, keys sorted
  const resultsText = readFileSync(join(root, 'sp2', 'eval_results.json'), 'utf8');
  const results = JSON.parse(resultsText) as Row;
  t.equal(results.eval_loss, e2[1]!.eval_loss);
  t.same(Object.keys(results), [...Object.keys(results)].sort(), 'sorted keys, as HF writes them');
  t.match(resultsText, /^\{\n {4}"epoch": /, '4-space indent');
});

t.test('dpo: eval loss and rewards under SP 2 equal SP 1', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const rows = Array.from({ length: 8 }, (_, i) => ({ instruction: `What follows ${i * 3}?`, input: '', chosen: `${i * 3 + 1} comes next.`.slice(0, 10 + i), rejected: `maybe ${i * 7}`.slice(0, 14 - i) }));
  writeFileSync(join(root, 'pairs.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const { one, two } = await runBoth(root, [
    `model_name_or_path: ${model}`, 'stage: dpo', 'finetuning_type: full', 'pref_beta: 0.5', `dataset: ${join(root, 'pairs.jsonl')}`, 'cutoff_len: 48',
    'val_size: 0.25', 'eval_strategy: steps', 'eval_steps: 3', 'per_device_eval_batch_size: 1',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant',
  ]);
  t.equal(one.result.ok, true, `sp 1 succeeded ${one.result.reason ?? ''}`);
  t.equal(two.result.ok, true, `sp 2 succeeded ${two.result.reason ?? ''}`);
  const [a] = evalRows(one.metrics);
  const [b] = evalRows(two.metrics);
  t.ok(a && b, 'one evaluation each');
  for (const k of ['eval_loss', 'eval_rewards/chosen', 'eval_rewards/rejected', 'eval_rewards/margins', 'eval_rewards/accuracies', 'eval_logps/chosen', 'eval_logps/rejected']) {
    const d = Math.abs(b![k]! - a![k]!) / Math.max(1e-3, Math.abs(a![k]!));
    t.ok(d < 1e-4, `${k}: sp 2 ${b![k]} = sp 1 ${a![k]} (relative ${d.toExponential(2)})`);
  }
});
