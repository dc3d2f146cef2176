// KTO, ORPO and SimPO under Ulysses sequence parallelism: 2 and 4 real rank processes on loopback,
// each with its shards of every sequence (prompts and answers cut at different places), against one
// process: the loss, every metric and every gradient tensor within 1e-4, and KTO's evaluation
// metrics (prefSpCase.ts).
import t from 'tap';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { prefModels, runKtoEval, runStep, STEPS } from './fixtures/prefSpCase.js';
import { runRanks } from './helpers/rankProcesses.js';

const RTOL = 1e-4;
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'prefSpRank.ts');

for (const world of [2, 4]) {
  t.test(`kto, orpo and simpo with P = ${world} equal one process (loss, metrics, every gradient)`, async (t) => {
    const run = await runRanks(t, fixture, world);
    t.same(run.codes, run.codes.map(() => 0), run.codes.every((c) => c === 0) ? 'every rank exited with 0' : `exit codes ${run.codes.join(', ')}\n${run.logs.join('\n')}`);
    const { model, ref } = await prefModels();
    const n = model.grads.length;
    for (let r = 1; r < world; r++) t.equal(Buffer.compare(Buffer.from(run.grads[0]!.buffer), Buffer.from(run.grads[r]!.buffer)), 0, `rank ${r} holds rank 0's reduced gradient bits`);
    for (const [k, kind] of STEPS.entries()) {
      const want = await runStep(kind, model, ref, singleProcessRuntime());
      for (const [name, v] of Object.entries(want)) {
        // ktoStep's loss and metrics come from SP rank 0 alone (the loop sums them over the world)
        const got = (kind === 'kto' ? run.results.slice(0, 1) : run.results).map((res) => (res[kind] as Record<string, number>)[name]!);
        if (kind === 'kto') t.ok(run.results.slice(1).every((res) => (res[kind] as Record<string, number>)[name] === 0), `kto ${name}: the other SP ranks contribute 0`);
        const err = Math.max(...got.map((x) => Math.abs(x - v) / Math.max(1e-3, Math.abs(v))));
        t.ok(err < RTOL, `${kind} ${name}: ranks ${got.map((x) => x.toFixed(6)).join(', ')} vs one process ${v.toFixed(6)} (worst ${err.toExponential(2)})`);
      }
      let worst = 0, worstName = '';
      for (const v of model.views) {
        let num = 0, den = 0;
        for (let i = v.offset; i < v.offset + v.numel; i++) {
          num += (run.grads[0]![k * n + i]! - model.grads[i]!) ** 2;
          den += model.grads[i]! ** 2;
        }
        const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-3);
        if (!(e <= worst)) [worst, worstName] = [e, v.name];
      }
      t.ok(worst < RTOL, `${kind}: every gradient (${model.views.length} tensors) within ${RTOL}: worst ${worstName} ${worst.toExponential(2)}`);
      t.ok(model.grads.some((x) => x !== 0), `${kind}: the gradient is not zero`);
    }
    // KTO evaluation: every rank holds the world's means
    for (const [name, v] of Object.entries(await runKtoEval(model, ref, singleProcessRuntime()))) {
      const got = run.results.map((res) => (res.kto_eval as Record<string, number>)[name]!);
      const err = Math.max(...got.map((x) => Math.abs(x - v) / Math.max(1e-3, Math.abs(v))));
      t.ok(err < RTOL, `kto eval ${name}: ranks ${got.map((x) => x.toFixed(6)).join(', ')} vs one process ${v.toFixed(6)} (worst ${err.toExponential(2)})`);
    }
  });
}
