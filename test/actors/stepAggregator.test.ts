// Step aggregation keeps metrics.jsonl to every step once, in order: replayed reports of a
// complete step are ignored, and a step done again (after a restart, or by a new `up` resuming
// the same output_dir) replaces the rows from that step on.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StepAggregator } from '../../src/actors/coordinator/StepAggregator.js';
import { createLogger } from '../../src/util/Logger.js';

const report = (step: number, loss = 1 / step) => ({ step, loss, tokens: 1, planDigest: 'd', policyState: 'normal' });
const rows = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });

function aggregator(path: string) {
  return new StepAggregator({ world: 2, metricsPath: path, logger: createLogger('silent'), restarts: () => 0 });
}

t.test('a replayed report of a complete step is ignored', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  const a = aggregator(path);
  t.equal(a.add(0, report(1)).kind, 'pending');
  t.equal(a.add(1, report(1)).kind, 'complete');
  t.equal(a.add(1, report(1)).kind, 'duplicate', 'a replay of step 1');
  t.equal(a.add(0, report(1)).kind, 'duplicate');
  t.equal(a.attemptStep, 1);
  await a.flush();
  t.same(rows(path).map((r) => r.step), [1]);
});

t.test('a step done again replaces the rows from it on', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  const a = aggregator(path);
  for (let s = 1; s <= 5; s++) for (const r of [0, 1]) a.add(r, report(s));
  // a restart from checkpoint-2 of another attempt: steps 3.. are done again, with other figures
  a.clear();
  t.equal(a.attemptStep, 0, 'the attempt starts over');
  for (let s = 3; s <= 6; s++) for (const r of [0, 1]) a.add(r, report(s, 100 + s));
  await a.flush();
  const got = rows(path);
  t.same(got.map((r) => r.step), [1, 2, 3, 4, 5, 6], 'every step once, in order');
  t.same(got.slice(2).map((r) => r.loss), [103, 104, 105, 106], 'the redone steps are the new attempt\'s');
  t.equal(a.lastStep, 6);
});

t.test('a new aggregator on the metrics of an interrupted run continues them', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  writeFileSync(path, [1, 2, 3, 4].map((s) => JSON.stringify({ step: s, loss: 1 })).join('\n') + '\n');
  const a = aggregator(path);
  // resumed from checkpoint-2: step 3 comes again
  for (let s = 3; s <= 5; s++) for (const r of [0, 1]) a.add(r, report(s, 7));
  await a.flush();
  t.same(rows(path).map((r) => [r.step, r.loss]), [[1, 1], [2, 1], [3, 7], [4, 7], [5, 7]]);
});

t.test('a torn last row (its writer killed mid-append) is cut off before the next row', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  writeFileSync(path, [1, 2].map((s) => JSON.stringify({ step: s, loss: 1 })).join('\n') + '\n{"step":3,"lo');
  const a = aggregator(path);
  for (const r of [0, 1]) a.add(r, report(3, 7));
  await a.flush();
  t.same(rows(path).map((r) => [r.step, r.loss]), [[1, 1], [2, 1], [3, 7]], 'whole rows only, step 3 once');
});

t.test('evaluation rows follow their step and go with it when the step is done again', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  const a = aggregator(path);
  a.addEval({ step: 2, metrics: { eval_loss: 0.5 } });
  for (let s = 1; s <= 3; s++) for (const r of [0, 1]) a.add(r, report(s));
  a.addEval({ step: 3, metrics: { eval_loss: 0.25 } });
  await a.flush();
  const lines = () => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; eval_loss?: number });
  t.same(lines().map((r) => [r.step, r.eval_loss ?? null]), [[1, null], [2, null], [2, 0.5], [3, null], [3, 0.25]], 'each evaluation right after its step');
  a.clear();
  for (const r of [0, 1]) a.add(r, report(3, 9));
  await a.flush();
  t.same(lines().map((r) => [r.step, r.eval_loss ?? null]), [[1, null], [2, null], [2, 0.5], [3, null]], 'step 3 redone: its old row and evaluation are gone');
});

t.test('a step only some ranks reported before a restart gets its row from them', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  const a = aggregator(path);
  for (let s = 1; s <= 2; s++) for (const r of [0, 1]) a.add(r, report(s));
  // rank 1 is cut off: its reports of steps 3 and 4 never arrive; rank 0 saves checkpoint-4
  t.equal(a.add(0, report(3, 30)).kind, 'pending');
  t.equal(a.add(0, report(4, 40)).kind, 'pending');
  a.clear();
  // the restart resumes from checkpoint-4
  for (let s = 5; s <= 6; s++) for (const r of [0, 1]) a.add(r, report(s));
  await a.flush();
  const got = rows(path) as { step: number; loss: number; ranks_reported?: number }[];
  t.same(got.map((r) => r.step), [1, 2, 3, 4, 5, 6], 'every step once, in order');
  t.same(got.map((r) => [r.loss, r.ranks_reported]), [[1, undefined], [0.5, undefined], [30, 1], [40, 1], [0.2, undefined], [1 / 6, undefined]], 'steps 3 and 4 from rank 0 alone, marked');
});

t.test('a partial step already in metrics.jsonl is not written over', async (t) => {
  const path = join(t.testdir(), 'metrics.jsonl');
  writeFileSync(path, [1, 2, 3, 4].map((s) => JSON.stringify({ step: s, loss: 1 })).join('\n') + '\n');
  const a = aggregator(path);
  // a resumed run redoes step 3, rank 0 reports it, then the group restarts again
  a.add(0, report(3, 9));
  a.clear();
  await a.flush();
  t.same(rows(path).map((r) => [r.step, r.loss]), [[1, 1], [2, 1], [3, 1], [4, 1]], 'the rows of the interrupted run stay');
});
