// Stage rm's pieces: the pairwise loss against hand-computed values, the score token (the last
// non-padding token) and which shard row holds it, and the gradient rmStep accumulates into the
// model (through the hidden-state gradient of the engine's backward) and into the value head,
// against central finite differences of the loss from its definition.
import t from 'tap';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { lastTokenIndex, lastTokenRow, rmPairTerms, rmStep, valueHead } from '../../src/train/loop/rm.js';
import { shardSequence, IGNORE_INDEX } from '../../src/train/loop/sequences.js';
import type { Model, TrainableSet } from '../../src/engine/model/index.js';
import type { PreferenceItem } from '../../src/train/loop/dpo.js';
import { rmModel, rmPairs } from './fixtures/rmSpCase.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);

t.test('the pairwise loss and its derivative equal hand-computed values', async (t) => {
  // sc - sr = 0.5: log(1 + e^-0.5) = 0.47407698418010663, dL/dsc = -1/(1 + e^0.5) = -0.3775406687981454
  let r = rmPairTerms(1.25, 0.75);
  t.ok(close(r.loss, 0.47407698418010663, 1e-15), `loss ${r.loss}`);
  t.ok(close(r.dChosen, -0.3775406687981454, 1e-15), `dL/dsc ${r.dChosen}`);
  r = rmPairTerms(2, 2);
  t.equal(r.loss, Math.LN2);
  t.equal(r.dChosen, -0.5);
  r = rmPairTerms(-40, 0);
  t.ok(close(r.loss, 40, 1e-15), `far behind: loss ${r.loss}, no overflow`);
});

t.test('the score token is the last non-padding token, held by exactly one shard', async (t) => {
  const seq = (len: number, pad: number) => ({ tokens: new Int32Array(len + pad), labels: new Int32Array(len + pad).fill(IGNORE_INDEX), docLens: pad ? Int32Array.of(len, -pad) : Int32Array.of(len) });
  t.equal(lastTokenIndex(seq(10, 14)), 9);
  t.equal(lastTokenIndex(seq(24, 0)), 23);
  t.equal(lastTokenIndex({ tokens: new Int32Array(9), labels: new Int32Array(9), docLens: Int32Array.of(4, 3, -2) }), 6, 'packed documents: the last real one');
  t.throws(() => lastTokenIndex({ tokens: new Int32Array(3), labels: new Int32Array(3), docLens: Int32Array.of(-3) }), /no token that is not padding/);
  for (const [len, pad, sp, holder, row] of [[10, 14, 2, 0, 9], [24, 0, 2, 1, 11], [10, 14, 4, 1, 3], [5, 0, 4, 2, 0], [5, 0, 2, 1, 1]] as const) {
    const s = seq(len, pad);
    const rows = Array.from({ length: sp }, (_, r) => lastTokenRow(shardSequence(s, sp, r), lastTokenIndex(s)));
    t.same(rows, rows.map((_, r) => (r === holder ? row : -1)), `${len} tokens + ${pad} padding over sp ${sp}: rank ${holder} row ${row}`);
  }
});

/** The step's loss from the definition: scores w·h + b at the last real token, mean -log σ(sc - sr). */
async function lossOf(model: Model, head: TrainableSet, items: PreferenceItem[]): Promise<number> {
  const hidden = model.config.hiddenSize;
  const score = async (s: PreferenceItem['chosen']) => {
    await model.forward({ tokens: s.tokens, labels: s.labels, docLens: s.docLens, normalizer: 1 });
    const h = model.finalHidden(lastTokenIndex(s));
    await model.backward(new Float32Array(s.tokens.length));  // drop the pending activations
    let v = head.params[head.views[1]!.offset]!;
    for (let d = 0; d < hidden; d++) v += head.params[d]! * h[d]!;
    return v;
  };
  let l = 0;
  for (const p of items) l += Math.log1p(Math.exp(-((await score(p.chosen)) - (await score(p.rejected)))));
  return l / items.length;
}

t.test('rmStep accumulates the gradient of the pairwise loss into the model and the head (finite differences)', async (t) => {
  const { model, head } = await rmModel();
  const items = rmPairs();
  await model.zeroGrad();
  const r = await rmStep({ model, head, runtime: singleProcessRuntime(), items });
  const g = Float32Array.from(model.grads);
  const gh = Float32Array.from(head.grads);
  await model.zeroGrad();
  const direct = await lossOf(model, head, items);
  t.ok(close(r.sums.loss / items.length, direct, 1e-6), `step loss ${r.sums.loss / items.length} equals the definition's ${direct}`);
  t.ok(Math.abs(direct - Math.LN2) > 1e-3, 'a random head scores the sides differently');
  t.equal(r.pairs, 3);
  const eps = 1e-2;
  const check = async (name: string, params: Float32Array, grad: Float32Array, coords: number[]) => {
    const lines: string[] = [];
    let ok = true;
    const gmax = grad.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    for (const i of coords) {
      const old = params[i]!;
      params[i] = old + eps;
      const lp = await lossOf(model, head, items);
      params[i] = old - eps;
      const lm = await lossOf(model, head, items);
      params[i] = old;
      const fd = (lp - lm) / (2 * eps);
      if (Math.abs(fd - grad[i]!) > 2e-5 + 2e-2 * gmax) ok = false;
      lines.push(`[${i}] ${grad[i]!.toExponential(3)}/${fd.toExponential(3)}`);
    }
    t.ok(ok, `${name}: analytic/fd ${lines.join('; ')}`);
  };
  const biasAt = head.views[1]!.offset;
  await check('v_head.summary', head.params, gh, [0, 7, 31, biasAt]);
  for (const v of model.views.filter((_, i) => i % 4 === 1)) {
    const sub = g.subarray(v.offset, v.offset + v.numel);
    let imax = 0;
    for (let i = 0; i < sub.length; i++) if (Math.abs(sub[i]!) > Math.abs(sub[imax]!)) imax = i;
    await check(v.name, model.params, g, [v.offset + imax, v.offset + Math.floor(v.numel / 3)]);
  }
  t.ok(g.some((x) => x !== 0), 'the model got gradients');
  t.equal(valueHead(40).views[1]!.offset, 48, 'the bias view is 16-aligned after the weight');
});
