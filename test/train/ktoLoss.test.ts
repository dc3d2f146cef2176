// Stage kto's loss: hand-computed fp64 values, LLaMA-Factory's formula (re-implemented here as its
// CustomKTOTrainer and TRL's kto_loss write it: chosen/rejected split by tag, concatenated,
// nanmean, the rescaled pref_ftx term) on fixed log-probs, derivatives by finite differences, and
// the gradient ktoStep accumulates through a real model against finite differences of the loss
// with the KL estimate held at its value (it is detached).
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { evaluateKto, ktoStep, KTO_METRICS, type KtoItem } from '../../src/train/loop/kto.js';
import { ktoBatchTerms, ktoKl, type KtoExample, type KtoSettings } from '../../src/train/loop/ktoLoss.js';
import { checkAgainstDifferences, lcg, logProb, pair } from './helpers/preferenceFixtures.js';
import { microConfig } from './helpers/trainFixtures.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);
const settings = (beta: number, extra: Partial<KtoSettings> = {}): KtoSettings => ({ beta, desirableWeight: 1, undesirableWeight: 1, ftx: 0, ...extra });
const ex = (policy: number, reference: number, tokens: number, desirable: boolean): KtoExample => ({ policy, reference, tokens, desirable });

t.test('the loss equals its hand-computed value (fp64)', async (t) => {
  // r = π − ρ: +1 (desirable), −2 (undesirable); KL 0.5, β 0.1
  const batch = [ex(-12, -13, 4, true), ex(-15, -13, 6, false)];
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  // desirable 1 − σ(0.1 (1 − 0.5)) = 1 − σ(0.05) = 0.487503; undesirable 1 − σ(0.1 (0.5 + 2)) = 1 − σ(0.25) = 0.437823
  const plain = ((1 - sig(0.05)) + (1 - sig(0.25))) / 2;
  t.ok(close(plain, 0.4626630513149958, 1e-15), `hand value ${plain}`);
  t.ok(close(ktoBatchTerms(settings(0.1), batch, 0.5).loss, plain, 1e-14), 'plain');
  // weights 1.5 / 0.5
  const weighted = (1.5 * (1 - sig(0.05)) + 0.5 * (1 - sig(0.25))) / 2;
  t.ok(close(ktoBatchTerms(settings(0.1, { desirableWeight: 1.5, undesirableWeight: 0.5 }), batch, 0.5).loss, weighted, 1e-14), 'kto_chosen_weight / kto_rejected_weight');
  // pref_ftx 0.2: + 0.2 · (12/4) / 1 · 2
  t.ok(close(ktoBatchTerms(settings(0.1, { ftx: 0.2 }), batch, 0.5).loss, plain + 1.2, 1e-14), 'pref_ftx, rescaled by batch / desirable count');
  const r = ktoBatchTerms(settings(0.1), batch, 0.5).rewards;
  t.ok(close(r[0]!, 0.1, 1e-14) && close(r[1]!, -0.2, 1e-14), 'rewards are β(π − ρ)');
  t.equal(ktoKl(-10, -8, 4), 0, 'a negative KL estimate is clamped at 0');
  t.ok(close(ktoKl(-8, -10, 4), 0.5, 1e-15), 'KL estimate: mean of policy − reference');
  t.equal(ktoKl(0, 0, 0), 0, 'no KL pairs: 0');
});

/** LLaMA-Factory's KTO loss of one micro-batch, vectorised as its trainer writes it (fp64). */
function llamaFactoryKto(s: KtoSettings, batch: KtoExample[], policyKl: number[], refKl: number[]): { loss: number; kl: number } {
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const kl = Math.max(0, mean(policyKl.map((p, i) => p - refKl[i]!)));
  const chosen = batch.filter((e) => e.desirable), rejected = batch.filter((e) => !e.desirable);
  const chosenLosses = chosen.map((e) => 1 - sig(s.beta * (e.policy - e.reference - kl)));
  const rejectedLosses = rejected.map((e) => 1 - sig(s.beta * (kl - (e.policy - e.reference))));
  const losses = [...chosenLosses.map((l) => s.desirableWeight * l), ...rejectedLosses.map((l) => s.undesirableWeight * l)];
  let loss = mean(losses);
  if (s.ftx > 1e-6 && chosen.length > 0) loss += (s.ftx * mean(chosen.map((e) => -e.policy / e.tokens))) / chosen.length * batch.length;
  return { loss, kl };
}

function fixedBatches(): { batch: KtoExample[]; pk: number[]; rk: number[] }[] {
  const r = lcg(77);
  return Array.from({ length: 40 }, (_, k) => {
    const n = 1 + (k % 5);
    const batch = Array.from({ length: n }, (_, i) => {
      const tokens = 1 + Math.floor(r() * 30);
      const reference = -tokens * (0.5 + 3 * r());
      return ex(reference + (r() - 0.5) * 20, reference, tokens, (k + i) % 3 !== 0);
    });
    const pk = batch.map(() => -40 * r()), rk = pk.map((p) => p + (r() - 0.4) * 10);
    return { batch, pk, rk };
  });
}

t.test('the loss equals LLaMA-Factory\'s formula on fixed log-probs (kl clamped, weights, pref_ftx)', async (t) => {
  for (const s of [settings(0.1), settings(0.5, { desirableWeight: 1.33, undesirableWeight: 0.7 }), settings(2, { ftx: 0.3 })]) {
    let worst = 0;
    let clamped = 0;
    for (const { batch, pk, rk } of fixedBatches()) {
      const want = llamaFactoryKto(s, batch, pk, rk);
      const kl = ktoKl(pk.reduce((a, x) => a + x, 0), rk.reduce((a, x) => a + x, 0), pk.length);
      if (kl === 0) clamped++;
      t.ok(close(kl, want.kl, 1e-12) || (kl === 0 && want.kl === 0), 'KL estimate');
      worst = Math.max(worst, Math.abs(ktoBatchTerms(s, batch, kl).loss - want.loss) / Math.max(1e-12, Math.abs(want.loss)));
    }
    t.ok(worst < 1e-12, `${JSON.stringify(s)}: worst relative difference ${worst.toExponential(2)}`);
    t.ok(clamped > 0 && clamped < 40, `${clamped} of 40 batches have a clamped KL`);
  }
});

t.test('dL/dπ matches central differences', async (t) => {
  const h = 1e-5;
  for (const s of [settings(0.3), settings(1.2, { desirableWeight: 2, undesirableWeight: 0.5, ftx: 0.4 })]) {
    let worst = 0;
    for (const { batch } of fixedBatches()) {
      const d = ktoBatchTerms(s, batch, 0.7).dPolicy;
      for (let i = 0; i < batch.length; i++) {
        const at = (dx: number) => ktoBatchTerms(s, batch.map((e, k) => (k === i ? { ...e, policy: e.policy + dx } : e)), 0.7).loss;
        const fd = (at(h) - at(-h)) / (2 * h);
        worst = Math.max(worst, Math.abs(fd - d[i]!) / (1e-4 + Math.abs(fd)));
      }
    }
    t.ok(worst < 1e-5, `${JSON.stringify(s)}: worst relative difference ${worst.toExponential(2)}`);
  }
});

/** A KTO item: the pair's chosen side trained, its rejected side (same prompt, another answer) as the KL sequence. */
function item(vocab: number, seed: number, desirable: boolean, lens: [number, number, number]): KtoItem {
  const p = pair(vocab, lens[0], lens[1], lens[2], seed);
  return { target: p.chosen, kl: p.rejected, desirable };
}

t.test('ktoStep accumulates the gradient of the step loss (finite differences, KL detached), with gradient accumulation', async (t) => {
  const cfg = { ...microConfig, initializerRange: 0.1 };
  const ref = await Model.create(cfg, { seed: 12 });
  const policy = await Model.create(cfg, { seed: 11 });
  const v = cfg.vocabSize;
  // two micro-batches of 2: [desirable, undesirable], [desirable, desirable]
  const items = [item(v, 41, true, [6, 5, 8]), item(v, 42, false, [4, 7, 3]), item(v, 43, true, [5, 3, 6]), item(v, 44, true, [3, 6, 4])];
  const s = settings(0.8, { desirableWeight: 1.3, undesirableWeight: 0.6, ftx: 0.25 });
  await policy.zeroGrad();
  const r = await ktoStep(policy, singleProcessRuntime(), items, 1, 1, { ...s, reference: { model: ref }, batch: 2 });
  t.same(Object.keys(r.metrics ?? {}), [...KTO_METRICS], 'the metrics TRL logs');
  // the KL estimates at the current weights, then held fixed (detached)
  const kls: number[] = [];
  for (let g = 0; g < 2; g++) {
    let p = 0, q = 0;
    for (const it of items.slice(2 * g, 2 * g + 2)) {
      p += await logProb(policy, it.kl);
      q += await logProb(ref, it.kl);
    }
    kls.push(ktoKl(p, q, 2));
  }
  const tokens = (it: KtoItem) => it.target.labels.filter((x) => x !== -100).length;
  const lossOf = async () => {
    let l = 0;
    for (let g = 0; g < 2; g++) {
      const batch: KtoExample[] = [];
      for (const it of items.slice(2 * g, 2 * g + 2)) batch.push(ex(await logProb(policy, it.target), await logProb(ref, it.target), tokens(it), it.desirable));
      l += llamaFactoryKto(s, batch, [kls[g]!], [0]).loss / 2;
    }
    return l;
  };
  const direct = await lossOf();
  t.ok(close(r.lossSum, direct, 1e-6), `step loss ${r.lossSum} equals the definition's ${direct}`);
  t.ok(close(r.metrics!.kl!, (kls[0]! + kls[1]!) / 2, 1e-6), `kl metric ${r.metrics!.kl} is the mean of the micro-batch estimates ${kls.join(', ')}`);
  const { ok, lines } = await checkAgainstDifferences(policy, lossOf);
  t.ok(ok, `analytic/fd ${lines.join('; ')}`);
  t.ok(policy.grads.some((x) => x !== 0), 'the policy got gradients');
  t.ok(ref.grads.every((x) => x === 0), 'the reference got none');
});

t.test('evaluateKto: per batch its own KL estimate, eval_loss weighted by batch sizes, metrics over examples', async (t) => {
  const cfg = { ...microConfig, initializerRange: 0.1 };
  const ref = await Model.create(cfg, { seed: 12 });
  const policy = await Model.create(cfg, { seed: 11 });
  const v = cfg.vocabSize;
  const items = [item(v, 51, true, [6, 5, 8]), item(v, 52, false, [4, 7, 3]), item(v, 53, true, [5, 3, 6])];
  const s = settings(0.8, { ftx: 0.2 });
  const r = await evaluateKto(policy, singleProcessRuntime(), items, { ...s, reference: { model: ref }, batch: 2 });
  const tokens = (it: KtoItem) => it.target.labels.filter((x) => x !== -100).length;
  let loss = 0, kl = 0;
  const rewards: number[][] = [[], []];
  for (const b of [items.slice(0, 2), items.slice(2)]) {
    const batch: KtoExample[] = [];
    const pk: number[] = [], rk: number[] = [];
    for (const it of b) {
      batch.push(ex(await logProb(policy, it.target), await logProb(ref, it.target), tokens(it), it.desirable));
      pk.push(await logProb(policy, it.kl));
      rk.push(await logProb(ref, it.kl));
    }
    const want = llamaFactoryKto(s, batch, pk, rk);
    loss += want.loss * b.length;
    kl += want.kl * b.length;
    for (const e of batch) rewards[e.desirable ? 0 : 1]!.push(s.beta * (e.policy - e.reference));
  }
  t.ok(close(r.loss, loss / 3, 1e-6), `eval_loss ${r.loss} vs ${loss / 3}`);
  t.ok(close(r.metrics.kl!, kl / 3, 1e-6), `eval_kl ${r.metrics.kl} vs ${kl / 3}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  t.ok(close(r.metrics['rewards/chosen']!, mean(rewards[0]!), 1e-6) && close(r.metrics['rewards/rejected']!, mean(rewards[1]!), 1e-6), 'rewards: means over each kind');
  t.same([r.samples, r.batches], [3, 2]);
});
