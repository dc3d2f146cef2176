// Stage dpo's pref_loss variants (sigmoid with label smoothing, hinge, ipo, orpo, simpo, and the
// pref_ftx term): values against hand-computed fp64 numbers and against LLaMA-Factory's formulas
// (re-implemented here as its trainer writes them: averaged log-probs for ipo/orpo/simpo, TRL's
// dpo_loss for the rest), the derivatives by finite differences, and the gradient dpoStep
// accumulates through a real model against finite differences of the loss itself.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { dpoStep, type PreferenceItem, type ReferenceModel } from '../../src/train/loop/dpo.js';
import { preferencePairTerms, usesReference, type PrefLoss, type PrefLossSettings, type SideLogps } from '../../src/train/loop/preferenceLoss.js';
import { checkAgainstDifferences, lcg, logProb, pair } from './helpers/preferenceFixtures.js';
import { microConfig } from './helpers/trainFixtures.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);
const settings = (kind: PrefLoss, beta: number, extra: Partial<PrefLossSettings> = {}): PrefLossSettings => ({ kind, beta, simpoGamma: 0.5, ftx: 0, labelSmoothing: 0, ...extra });
const side = (policy: number, reference: number, tokens: number): SideLogps => ({ policy, reference, tokens });

t.test('each loss equals its hand-computed value (fp64)', async (t) => {
  // πc, πr, ρc, ρr = -12, -15, -13, -14 over 4 and 6 response tokens; β = 0.1
  const c = side(-12, -13, 4), r = side(-15, -14, 6);
  const want: [string, PrefLossSettings, number][] = [
    // h = 1 - (-1) = 2: log(1 + e^-0.2)
    ['sigmoid', settings('sigmoid', 0.1), 0.5981388693815918],
    // cDPO ε = 0.2: 0.8·softplus(-0.2) + 0.2·softplus(0.2)
    ['sigmoid, label smoothing 0.2', settings('sigmoid', 0.1, { labelSmoothing: 0.2 }), 0.6381388693815918],
    ['hinge', settings('hinge', 0.1), 0.8],
    // averages: h = (-3 + 3.25) - (-2.5 + 2.3333) = 0.41667; (h - 5)^2
    ['ipo', settings('ipo', 0.1), 21.00694444444445],
    ['orpo', settings('orpo', 0.1), 3.0995742552921723],
    ['simpo', settings('simpo', 0.1), 1.0054924814633377],
    // + 0.3 · 12/4
    ['sigmoid + pref_ftx 0.3', settings('sigmoid', 0.1, { ftx: 0.3 }), 1.4981388693815916],
  ];
  for (const [name, s, v] of want) {
    const got = preferencePairTerms(s, c, r).loss;
    t.ok(close(got, v, 1e-13), `${name}: ${got} vs ${v}`);
  }
  const o = preferencePairTerms(settings('orpo', 0.1), c, r);
  t.ok(close(o.sftLoss, 3, 1e-15) && close(o.oddsRatioLoss, 0.9957425529217226, 1e-13), `orpo parts: sft ${o.sftLoss}, odds ratio ${o.oddsRatioLoss}`);
  t.ok(close(o.rewardChosen, -0.3, 1e-14) && close(o.rewardRejected, -0.25, 1e-14), 'reference-free rewards are β times the average log-probs');
  t.same([usesReference('sigmoid'), usesReference('hinge'), usesReference('ipo'), usesReference('orpo'), usesReference('simpo')], [true, true, true, false, false]);
});

/** LLaMA-Factory's preference loss on sums and lengths, as its CustomDPOTrainer computes it (fp64). */
function llamaFactoryLoss(s: PrefLossSettings, c: SideLogps, r: SideLogps): { loss: number; chosen: number; rejected: number } {
  const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
  const logsig = (x: number) => -softplus(-x);
  const avg = s.kind === 'ipo' || s.kind === 'orpo' || s.kind === 'simpo';
  const [pc, pr] = avg ? [c.policy / c.tokens, r.policy / r.tokens] : [c.policy, r.policy];
  const [rc, rr] = avg ? [c.reference / c.tokens, r.reference / r.tokens] : [c.reference, r.reference];
  const b = s.beta;
  let loss: number, chosen: number, rejected: number;
  if (s.kind === 'orpo') {
    const logOdds = pc - pr - (Math.log1p(-Math.exp(pc)) - Math.log1p(-Math.exp(pr)));
    [loss, chosen, rejected] = [-pc + b * -logsig(logOdds), b * pc, b * pr];
  } else if (s.kind === 'simpo') {
    [loss, chosen, rejected] = [-logsig(b * (pc - pr - s.simpoGamma / b)), b * pc, b * pr];
  } else {
    const logits = pc - pr - (rc - rr);
    if (s.kind === 'sigmoid') loss = -logsig(b * logits) * (1 - s.labelSmoothing) - logsig(-b * logits) * s.labelSmoothing;
    else if (s.kind === 'hinge') loss = Math.max(0, 1 - b * logits);
    else loss = (logits - 1 / (2 * b)) ** 2;
    [chosen, rejected] = [b * (pc - rc), b * (pr - rr)];
  }
  // sft_loss = -chosen_logps_avg, added with weight pref_ftx
  if (s.ftx > 1e-6) loss += s.ftx * -(c.policy / c.tokens);
  return { loss, chosen, rejected };
}

const KINDS: PrefLoss[] = ['sigmoid', 'hinge', 'ipo', 'orpo', 'simpo'];

function fixedCases(): [SideLogps, SideLogps][] {
  const r = lcg(77);
  return Array.from({ length: 40 }, () => {
    const nc = 1 + Math.floor(r() * 30), nr = 1 + Math.floor(r() * 30);
    // average log-probs between -6 and -0.05 (orpo needs them below 0)
    const mk = (n: number) => side(-n * (0.05 + 6 * r()), -n * (0.05 + 6 * r()), n);
    return [mk(nc), mk(nr)];
  });
}

t.test('every loss matches LLaMA-Factory\'s formula on fixed log-probs, with its rewards', async (t) => {
  for (const kind of KINDS)
    for (const beta of [0.05, 0.1, 2.5])
      for (const extra of [{}, { ftx: 0.7 }, ...(kind === 'sigmoid' ? [{ labelSmoothing: 0.3 }] : []), ...(kind === 'simpo' ? [{ simpoGamma: 1.4 }] : [])]) {
        const s = settings(kind, beta, extra);
        let worst = 0;
        for (const [c, r] of fixedCases()) {
          const mine = preferencePairTerms(s, c, r), lf = llamaFactoryLoss(s, c, r);
          for (const [a, b] of [[mine.loss, lf.loss], [mine.rewardChosen, lf.chosen], [mine.rewardRejected, lf.rejected]] as const)
            worst = Math.max(worst, Math.abs(a - b) / Math.max(1e-12, Math.abs(b)));
        }
        t.ok(worst < 1e-12, `${kind} beta ${beta} ${JSON.stringify(extra)}: worst relative difference ${worst.toExponential(2)}`);
      }
});

t.test('the derivatives with respect to the policy sums match central finite differences', async (t) => {
  const h = 1e-6;
  for (const kind of KINDS)
    for (const extra of [{}, { ftx: 0.4 }, ...(kind === 'sigmoid' ? [{ labelSmoothing: 0.25 }] : [])]) {
      const s = settings(kind, 0.3, extra);
      let worst = 0;
      for (const [c, r] of fixedCases()) {
        const d = preferencePairTerms(s, c, r);
        const at = (dc: number, dr: number) => preferencePairTerms(s, { ...c, policy: c.policy + dc }, { ...r, policy: r.policy + dr }).loss;
        const fdc = (at(h, 0) - at(-h, 0)) / (2 * h), fdr = (at(0, h) - at(0, -h)) / (2 * h);
        // relative, with an absolute floor: central differences of an O(10) loss carry ~1e-9 of rounding
        worst = Math.max(worst, Math.abs(fdc - d.dChosen) / (1e-3 + Math.abs(fdc)), Math.abs(fdr - d.dRejected) / (1e-3 + Math.abs(fdr)));
      }
      t.ok(worst < 1e-5, `${kind} ${JSON.stringify(extra)}: worst relative difference ${worst.toExponential(2)}`);
    }
});

/** The step's loss from the definition: mean over pairs, log-probs of real forwards. */
async function lossOf(s: PrefLossSettings, policy: Model, ref: Model | null, items: PreferenceItem[]): Promise<number> {
  let l = 0;
  for (const p of items) {
    const n = (q: typeof p.chosen) => q.labels.filter((x) => x !== -100).length;
    const c = side(await logProb(policy, p.chosen), ref ? await logProb(ref, p.chosen) : 0, n(p.chosen));
    const r = side(await logProb(policy, p.rejected), ref ? await logProb(ref, p.rejected) : 0, n(p.rejected));
    l += llamaFactoryLoss(s, c, r).loss;
  }
  return l / items.length;
}

t.test('dpoStep accumulates the gradient of every loss (finite differences); orpo and simpo need no reference', async (t) => {
  const cfg = { ...microConfig, initializerRange: 0.1 };
  const ref = await Model.create(cfg, { seed: 12 });
  const items = [pair(cfg.vocabSize, 6, 5, 8, 41), pair(cfg.vocabSize, 4, 7, 3, 42)];
  const cases: [PrefLoss, Partial<PrefLossSettings>][] = [['orpo', {}], ['simpo', { ftx: 0.5 }], ['ipo', {}], ['hinge', {}], ['sigmoid', { labelSmoothing: 0.2, ftx: 0.3 }]];
  for (const [kind, extra] of cases) {
    const policy = await Model.create(cfg, { seed: 11 });
    // ipo's loss is quadratic in the averages: a small beta keeps the target margin 1/(2β) modest
    const s = settings(kind, kind === 'ipo' ? 2 : 0.5, { simpoGamma: 0.3, ...extra });
    const { beta, ...loss } = s;
    const reference: ReferenceModel | undefined = usesReference(kind) ? { model: ref } : undefined;
    await policy.zeroGrad();
    const r = await dpoStep({ model: policy, reference, runtime: singleProcessRuntime(), items, beta, loss });
    const direct = await lossOf(s, policy, reference ? ref : null, items);
    t.ok(close(r.sums.loss / 2, direct, 1e-6), `${kind}: step loss ${r.sums.loss / 2} equals the definition's ${direct}`);
    const { ok, lines } = await checkAgainstDifferences(policy, () => lossOf(s, policy, reference ? ref : null, items));
    t.ok(ok, `${kind}: analytic/fd ${lines.join('; ')}`);
    t.ok(policy.grads.some((x) => x !== 0), `${kind}: the policy got gradients`);
  }
  const policy = await Model.create(cfg, { seed: 11 });
  await t.rejects(dpoStep({ model: policy, runtime: singleProcessRuntime(), items, beta: 0.1 }), { code: 'ERR_STATE' }, 'the sigmoid loss without a reference model is a state error');
});
