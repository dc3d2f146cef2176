// The evaluation passes: eval_loss as HF Trainer computes it (per-batch token-mean loss, batches
// weighted by their item counts) and LLaMA-Factory's eval_accuracy (per-item share of argmax ==
// label, averaged), checked against an fp64 re-implementation over the fp64 reference decoder;
// two data-parallel replicas give the same figures as one; the DPO evaluation's loss and rewards
// against the sigmoid loss computed in fp64; and the Evaluator's schedule (steps, fractions of
// the run, epochs). Forward only: the weights and gradients stay untouched.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime, layoutOf, type Group, type ParallelRuntime } from '../../src/train/ParallelRuntime.js';
import { evaluateLanguageModel, evaluatePreference } from '../../src/train/loop/evaluate.js';
import { Evaluator, evalEverySteps } from '../../src/train/loop/Evaluator.js';
import type { PackedSequence } from '../../src/train/loop/sequences.js';
import { hfDecoder } from '../engine/helpers/hfDecoder.js';
import { microConfig, microHfConfig, progressionData } from './helpers/trainFixtures.js';

const positionsOf = (s: PackedSequence) => {
  const p = new Int32Array(s.tokens.length);
  let t = 0;
  for (const len of s.docLens ?? [s.tokens.length]) for (let i = 0; i < len; i++) p[t++] = i;
  return p;
};

/** fp64 -log p(label) per position of `s` under `m`'s weights (the HF reference decoder). */
function refTokenLoss(m: Model, s: PackedSequence): Float64Array {
  const docLens = [...(s.docLens ?? [s.tokens.length])];
  return hfDecoder(microHfConfig, (name) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined), { tokens: s.tokens, labels: s.labels, positions: positionsOf(s), docLens, normalizer: 1 }).tokenLoss;
}

/** Two replicas in one process: world/dp sums meet in the middle, sp is the identity (sp 1). */
function replicaPair(): [ParallelRuntime, ParallelRuntime] {
  let pending: { buf: Float32Array | Float64Array; done: () => void } | null = null;
  const make = (rank: number): ParallelRuntime => ({
    ...layoutOf(rank, 2, 1),
    async allReduceSum(buf: Float32Array | Float64Array, group: Group) {
      if (group === 'sp') return;
      if (!pending) {
        await new Promise<void>((done) => (pending = { buf, done }));
        return;
      }
      const other = pending;
      pending = null;
      for (let i = 0; i < buf.length; i++) {
        const s = buf[i]! + other.buf[i]!;
        buf[i] = s;
        other.buf[i] = s;
      }
      other.done();
    },
    broadcast: async () => {},
    barrier: async () => {},
    reduceGradients: async () => {},
    attachModel: () => {},
    modelWorld: async () => null,
    close: async () => {},
  });
  return [make(0), make(1)];
}

t.test('eval_loss and eval_accuracy match the fp64 reference with HF batch weighting', async (t) => {
  const m = await Model.create(microConfig, { seed: 5 });
  // items of two lengths, so a batch's token mean differs from the mean of its items' means
  const items = [...progressionData({ count: 3, len: 24, seed: 3 }), ...progressionData({ count: 2, len: 12, seed: 4 })];
  const before = Float32Array.from(m.params);
  const r = await evaluateLanguageModel(m, singleProcessRuntime(), items, { batch: 2, accuracy: true });
  t.same(Array.from(m.params), Array.from(before), 'the weights are untouched');

  // reference: batches [0,1] [2,3] [4]; loss of a batch = its token losses over its supervised tokens
  let weighted = 0;
  let weight = 0;
  let accSum = 0;
  for (const b of [[0, 1], [2, 3], [4]]) {
    let sum = 0;
    let valid = 0;
    for (const k of b) {
      const tl = refTokenLoss(m, items[k]!);
      items[k]!.labels.forEach((l, i) => {
        if (l !== -100) {
          sum += tl[i]!;
          valid++;
        }
      });
    }
    weighted += b.length * (sum / valid);
    weight += b.length;
  }
  const refLoss = weighted / weight;
  const rel = Math.abs(r.loss - refLoss) / refLoss;
  t.ok(rel < 1e-5, `eval_loss ${r.loss} vs fp64 ${refLoss}: relative difference ${rel.toExponential(2)}`);
  // accuracy: per item correct/valid, from the engine's argmax (checked against the reference elsewhere)
  for (const s of items) {
    const argmax = new Int32Array(s.tokens.length);
    await m.forward({ tokens: s.tokens, labels: s.labels, positions: positionsOf(s), docLens: s.docLens, normalizer: 1, tokenArgmax: argmax });
    let ok = 0;
    let valid = 0;
    s.labels.forEach((l, i) => {
      if (l !== -100) {
        valid++;
        if (argmax[i] === l) ok++;
      }
    });
    accSum += ok / valid;
  }
  t.ok(Math.abs(r.accuracy! - accSum / items.length) < 1e-12, `eval_accuracy ${r.accuracy} = mean per-item accuracy ${accSum / items.length}`);
  t.equal(r.samples, 5);
  t.equal(r.batches, 3);

  const b1 = await evaluateLanguageModel(m, singleProcessRuntime(), items, { batch: 1, accuracy: false });
  t.equal(b1.accuracy, undefined, 'no accuracy unless asked');
  t.not(b1.loss, r.loss, 'the batch size changes HF\'s eval_loss (batch means weighted by items)');
});

t.test('two data-parallel replicas give the figures of one process', async (t) => {
  const items = progressionData({ count: 7, len: 20, seed: 11 });
  const one = await evaluateLanguageModel(await Model.create(microConfig, { seed: 9 }), singleProcessRuntime(), items, { batch: 1, accuracy: true });
  const [a, b] = replicaPair();
  const [ra, rb] = await Promise.all([
    evaluateLanguageModel(await Model.create(microConfig, { seed: 9 }), a, items, { batch: 1, accuracy: true }),
    evaluateLanguageModel(await Model.create(microConfig, { seed: 9 }), b, items, { batch: 1, accuracy: true }),
  ]);
  t.same([ra.batches, rb.batches], [4, 3], 'replica 0 takes items 0,2,4,6; replica 1 items 1,3,5');
  t.equal(ra.loss, rb.loss, 'both replicas report the same world figure');
  t.ok(Math.abs(ra.loss - one.loss) / one.loss < 1e-12, `dp 2 ${ra.loss} = dp 1 ${one.loss}`);
  t.ok(Math.abs(ra.accuracy! - one.accuracy!) < 1e-12);
});

t.test('DPO evaluation: sigmoid loss, rewards and log-probs against fp64', async (t) => {
  const policy = await Model.create(microConfig, { seed: 2 });
  const reference = await Model.create(microConfig, { seed: 3 });
  const seqs = progressionData({ count: 6, len: 16, seed: 1 });
  const pairs = [0, 2, 4].map((i) => ({ chosen: seqs[i]!, rejected: seqs[i + 1]! }));
  const beta = 0.3;
  const r = await evaluatePreference(policy, singleProcessRuntime(), pairs, { batch: 2, beta, reference: { model: reference } });
  const logp = (m: Model, s: PackedSequence) => {
    const tl = refTokenLoss(m, s);
    return s.labels.reduce((a, l, i) => (l !== -100 ? a - tl[i]! : a), 0);
  };
  const want = { loss: 0, chosen: 0, rejected: 0, acc: 0, lc: 0, lr: 0 };
  for (const p of pairs) {
    const pc = logp(policy, p.chosen), pr = logp(policy, p.rejected), rc = logp(reference, p.chosen), rr = logp(reference, p.rejected);
    const z = beta * (pc - rc) - beta * (pr - rr);
    want.loss += Math.log1p(Math.exp(-z));
    want.chosen += beta * (pc - rc);
    want.rejected += beta * (pr - rr);
    want.acc += beta * (pc - rc) > beta * (pr - rr) ? 1 : 0;
    want.lc += pc;
    want.lr += pr;
  }
  const n = pairs.length;
  const close = (a: number, b: number, what: string) => t.ok(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)), `${what}: ${a} vs fp64 ${b}`);
  close(r.loss, want.loss / n, 'loss');
  close(r.metrics['rewards/chosen']!, want.chosen / n, 'rewards/chosen');
  close(r.metrics['rewards/rejected']!, want.rejected / n, 'rewards/rejected');
  close(r.metrics['rewards/margins']!, (want.chosen - want.rejected) / n, 'rewards/margins');
  t.equal(r.metrics['rewards/accuracies'], want.acc / n, 'rewards/accuracies');
  close(r.metrics['logps/chosen']!, want.lc / n, 'logps/chosen');
  close(r.metrics['logps/rejected']!, want.lr / n, 'logps/rejected');
});

t.test('the schedule: every eval_steps, a fraction of the run, or at epoch ends and the last step', async (t) => {
  t.equal(evalEverySteps({ eval_steps: null, logging_steps: 10 }, 100), 10, 'null: logging_steps (HF)');
  t.equal(evalEverySteps({ eval_steps: 0.25, logging_steps: 10 }, 30), 8, 'a fraction: ceil(0.25 x 30)');
  t.equal(evalEverySteps({ eval_steps: 5, logging_steps: 10 }, 30), 5);
  const m = await Model.create(microConfig, { seed: 1 });
  const sets = [{ name: null, kind: 'lm' as const, items: progressionData({ count: 2, len: 8 }) }];
  const base = { eval_steps: 3, logging_steps: 10, per_device_eval_batch_size: 1, compute_accuracy: false, gradient_accumulation_steps: 2 };
  const steps = new Evaluator({ model: m, runtime: singleProcessRuntime(), sets, config: { ...base, eval_strategy: 'steps' }, totalSteps: 10, batchesPerEpoch: 5 });
  t.same([...Array(10).keys()].map((i) => i + 1).filter((s) => steps.due(s)), [3, 6, 9]);
  // 5 micro-batches per epoch, 2 per step: epochs end inside steps 3 (mb 5) and 5 (mb 10)
  const epoch = new Evaluator({ model: m, runtime: singleProcessRuntime(), sets, config: { ...base, eval_strategy: 'epoch' }, totalSteps: 7, batchesPerEpoch: 5 });
  t.same([...Array(7).keys()].map((i) => i + 1).filter((s) => epoch.due(s)), [3, 5, 7], 'epoch ends and the last step');
  const no = new Evaluator({ model: m, runtime: singleProcessRuntime(), sets, config: { ...base, eval_strategy: 'no' }, totalSteps: 7, batchesPerEpoch: 5 });
  t.notOk([1, 2, 3, 7].some((s) => no.due(s)));
  const out = await steps.run(6);
  t.same(Object.keys(out).sort(), ['epoch', 'eval_loss', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second'], 'HF\'s eval metric names');
  t.equal(out.epoch, 2.4, 'epoch = steps x accumulation / micro-batches per epoch');
  t.same(steps.last?.step, 6);
});
