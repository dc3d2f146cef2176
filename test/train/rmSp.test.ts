// Stage rm under Ulysses sequence parallelism: 2 and 4 real rank processes on loopback, each with
// its shards of every chosen and rejected sequence; the score token (last non-padding token) sits
// on different ranks for different sequences (rmSpCase.ts). Loss, metrics, every model gradient
// and the value head's gradient must equal one process within 1e-4.
import t from 'tap';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { rmStep } from '../../src/train/loop/rm.js';
import { rmModel, rmPairs } from './fixtures/rmSpCase.js';
import { runRanks } from './helpers/rankProcesses.js';

const RTOL = 1e-4;
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'rmSpRank.ts');

for (const world of [2, 4]) {
  t.test(`rm with P = ${world} equals one process (loss, accuracy, scores, every gradient)`, async (t) => {
    const run = await runRanks(t, fixture, world);
    t.same(run.codes, run.codes.map(() => 0), run.codes.every((c) => c === 0) ? 'every rank exited with 0' : `exit codes ${run.codes.join(', ')}\n${run.logs.join('\n')}`);
    const { model, head } = await rmModel();
    const ref = await rmStep({ model, head, runtime: singleProcessRuntime(), items: rmPairs() });
    for (const k of ['loss', 'accuracy', 'chosenScore', 'rejectedScore'] as const) {
      const got = run.results.map((r) => r[k] as number);
      const err = Math.max(...got.map((x) => Math.abs(x - ref.sums[k]) / Math.max(1e-3, Math.abs(ref.sums[k]))));
      t.ok(err < RTOL, `${k}: ranks ${got.map((x) => x.toFixed(6)).join(', ')} vs one process ${ref.sums[k].toFixed(6)} (worst ${err.toExponential(2)})`);
    }
    const all = new Float32Array(model.grads.length + head.grads.length);
    all.set(model.grads, 0);
    all.set(head.grads, model.grads.length);
    const views = [...model.views, ...head.views.map((v) => ({ ...v, offset: v.offset + model.grads.length }))];
    for (let r = 1; r < world; r++) t.equal(Buffer.compare(Buffer.from(run.grads[0]!.buffer), Buffer.from(run.grads[r]!.buffer)), 0, `rank ${r} holds rank 0's reduced gradient bits`);
    let worst = 0, worstName = '';
    for (const v of views) {
      let num = 0, den = 0;
      for (let i = v.offset; i < v.offset + v.numel; i++) {
        num += (run.grads[0]![i]! - all[i]!) ** 2;
        den += all[i]! ** 2;
      }
      // the head's bias gets an analytic 0 (the pairwise loss ignores a shift of both scores): its
      // rounding is compared absolutely (gradient norms here are O(1))
      const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-3);
      if (!(e <= worst)) [worst, worstName] = [e, v.name];
    }
    t.ok(worst < RTOL, `every gradient (${views.length} tensors, value head included) within ${RTOL}: worst ${worstName} ${worst.toExponential(2)}`);
  });
}
