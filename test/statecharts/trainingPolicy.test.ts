// Table-driven and property tests of the training-policy statechart (REFERENCE §5).
import t from 'tap';
import fc from 'fast-check';
import { PolicyRunner, planDigest } from '../../src/statecharts/policyRunner.js';
import { defaultPolicyConfig, type PolicyConfig } from '../../src/statecharts/policyConfig.js';
import type { PolicyPlan, PolicyStateName } from '../../src/statecharts/trainingPolicy.js';

const TOTAL = 100;
const WARMUP = 10;
const MAX_NORM = 2.0;

function ev(step: number, gradMean: number, over: Partial<{ nonfinite: number; totalSteps: number; warmupSteps: number; maxGradNorm: number }> = {}) {
  return {
    step,
    totalSteps: over.totalSteps ?? TOTAL,
    warmupSteps: over.warmupSteps ?? WARMUP,
    maxGradNorm: over.maxGradNorm ?? MAX_NORM,
    seed: 42,
    stats: { gradMean, l2Norm: gradMean * 100, maxAbs: gradMean * 10, nonfinite: over.nonfinite ?? 0 },
  };
}

type Row = [step: number, gradMean: number, state: PolicyStateName, expect: Partial<PolicyPlan>, over?: Parameters<typeof ev>[2]];

const plain = { noiseStd: 0, scaleFactor: 1, lrMultiplier: 1, clipNorm: MAX_NORM, skipUpdate: false, escalate: false };
const vanishingPlan = { noiseStd: 1e-4, scaleThreshold: 1e-4, scaleFactor: 1.5, lrMultiplier: 1.2, clipNorm: MAX_NORM };
const lateVanishingPlan = { noiseStd: 1e-5, scaleThreshold: 1e-4, scaleFactor: 1.1, lrMultiplier: 1, clipNorm: MAX_NORM, lateVanishing: true };

function runTable(t: Tap.Test, name: string, rows: Row[], config?: PolicyConfig) {
  t.test(name, async (t) => {
    const r = new PolicyRunner(config);
    for (const [step, g, state, expect, over] of rows) {
      const { plan } = r.step(ev(step, g, over));
      t.equal(plan.state, state, `step ${step}, grad_mean ${g}: state ${state}`);
      for (const [k, v] of Object.entries(expect)) {
        t.equal(plan[k as keyof PolicyPlan], v, `step ${step}: ${k} = ${String(v)}`);
      }
    }
  });
}

// tap's global Test type, without importing internals
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Tap {
    type Test = typeof t;
  }
}

runTable(t, 'warmup lasts exactly the LR warmup and makes no vanishing interventions', [
  [1, 1e-7, 'warmup', plain],
  [5, 1e-3, 'warmup', plain],
  [10, 1e-7, 'warmup', plain], // step == warmup steps: still warmup
  [11, 1e-3, 'normal', plain],
]);

runTable(t, 'no warmup phase when the schedule has 0 warmup steps', [
  [1, 1e-3, 'normal', plain, { warmupSteps: 0 }],
  [2, 1e-7, 'vanishing-intervention', vanishingPlan, { warmupSteps: 0 }],
]);

runTable(t, 'vanishing threshold is strict: exactly 1e-4 is healthy', [
  [20, 1e-4, 'normal', plain],
  [21, 0.99999e-4, 'vanishing-intervention', vanishingPlan],
]);

runTable(t, 'leaving vanishing-intervention needs threshold x the exit threshold (hysteresis)', [
  [20, 5e-5, 'vanishing-intervention', vanishingPlan],
  [21, 1.2e-4, 'vanishing-intervention', vanishingPlan], // above entry threshold, below 1.5e-4
  [22, 1.4999e-4, 'vanishing-intervention', vanishingPlan],
  [23, 1.5e-4, 'normal', plain], // exactly the exit threshold: recovered
  [24, 1.2e-4, 'normal', plain], // from normal, 1.2e-4 is healthy
]);

runTable(t, 'late stage starts after 90% of the steps and never boosts the LR', [
  [90, 1e-3, 'normal', plain], // 90 > 0.9 * 100 is false
  [91, 1e-3, 'late-stage', plain],
  [92, 5e-5, 'late-stage', { ...plain, lateVanishing: false }], // vanishing for main, not for late
  [93, 1e-5, 'late-stage', { ...plain, lateVanishing: false }], // late threshold is strict
  [94, 9e-6, 'late-stage', lateVanishingPlan],
  [95, 1.2e-5, 'late-stage', lateVanishingPlan], // hysteresis: below the late exit threshold 1.5e-5
  [96, 1.5e-5, 'late-stage', { ...plain, lateVanishing: false }],
]);

runTable(t, 'vanishing-intervention hands over to late-stage without the LR boost', [
  [89, 5e-5, 'vanishing-intervention', vanishingPlan],
  [90, 5e-5, 'vanishing-intervention', vanishingPlan],
  [91, 5e-5, 'late-stage', { ...plain, lateVanishing: false }],
]);

runTable(t, 'explode-clip: strict threshold, any phase, lasts while grad_mean stays high', [
  [3, 5.0, 'warmup', plain], // exactly 5.0 is not exploding
  [4, 5.0001, 'explode-clip', { clipNorm: 1.0, lrMultiplier: 1, noiseStd: 0 }], // explode in warmup
  [5, 7, 'explode-clip', { clipNorm: 1.0 }],
  [6, 1e-3, 'warmup', plain], // back to the phase of the step
  [50, 6, 'explode-clip', { clipNorm: 1.0 }],
  [51, 1e-5, 'vanishing-intervention', vanishingPlan], // gradient condition judged afresh
  [95, 9, 'explode-clip', { clipNorm: 1.0 }], // explode in late stage
  [96, 1e-3, 'late-stage', plain],
]);

runTable(t, 'explode clip never loosens a tighter max_grad_norm, and works without one', [
  [20, 6, 'explode-clip', { clipNorm: 0.5 }, { maxGradNorm: 0.5 }],
  [21, 6, 'explode-clip', { clipNorm: 1.0 }, { maxGradNorm: 0 }],
  [22, 1e-3, 'normal', { clipNorm: 0 }, { maxGradNorm: 0 }],
]);

runTable(
  t,
  'non-finite statistics skip the update and escalate after the patience',
  [
    [20, 1e-3, 'normal', plain],
    [21, NaN, 'normal', { skipUpdate: true, escalate: false }],
    [22, 1e-3, 'normal', { skipUpdate: true, escalate: false }, { nonfinite: 3 }],
    [23, 1e-3, 'normal', { skipUpdate: false }], // streak reset by a finite step
    [24, Infinity, 'normal', { skipUpdate: true, escalate: false }],
    [25, 1e-3, 'normal', { skipUpdate: true, escalate: false }, { nonfinite: 1 }],
    [26, 1e-3, 'normal', { skipUpdate: true, escalate: true }, { nonfinite: 1 }],
  ],
  { ...defaultPolicyConfig, nonfinitePatience: 3 },
);

runTable(
  t,
  'a disabled policy tracks the phase but never intervenes',
  [
    [20, 1e-7, 'vanishing-intervention', { noiseStd: 0, lrMultiplier: 1, scaleFactor: 1, centralize: 'none' }],
    [21, 9, 'explode-clip', { clipNorm: MAX_NORM }],
  ],
  { ...defaultPolicyConfig, enabled: false },
);

t.test('centralization scope comes from the configuration', async (t) => {
  for (const scope of ['linear', 'all', 'none'] as const) {
    const r = new PolicyRunner({ ...defaultPolicyConfig, centralize: scope });
    t.equal(r.step(ev(20, 1e-3)).plan.centralize, scope, `centralize ${scope}`);
  }
});

t.test('transitions report where they came from', async (t) => {
  const r = new PolicyRunner();
  t.equal(r.state, 'warmup');
  const tr = r.step(ev(94, 9e-6));
  t.same([tr.from, tr.to, tr.path], ['warmup', 'late-stage', 'late-stage.vanishing']);
});

// --- properties ---------------------------------------------------------------------------

const statArb = fc.oneof(
  fc.double({ min: 1e-8, max: 1e-3, noNaN: true }),
  fc.double({ min: 1e-3, max: 10, noNaN: true }),
  fc.constantFrom(1e-4, 1.5e-4, 1e-5, 5.0, NaN),
);
const streamArb = fc.record({
  total: fc.integer({ min: 1, max: 60 }),
  warmup: fc.integer({ min: 0, max: 10 }),
  grads: fc.array(statArb, { minLength: 1, maxLength: 60 }),
});

t.test('property: identical inputs give identical plans on independent runners', async (t) => {
  fc.assert(
    fc.property(streamArb, ({ total, warmup, grads }) => {
      const a = new PolicyRunner();
      const b = new PolicyRunner();
      grads.forEach((g, i) => {
        const e = ev(i + 1, g, { totalSteps: total, warmupSteps: warmup });
        const pa = a.step(e).plan;
        const pb = b.step(structuredClone(e)).plan;
        if (planDigest(pa) !== planDigest(pb) || JSON.stringify(pa) !== JSON.stringify(pb)) throw new Error(`diverged at step ${i + 1}`);
      });
    }),
    { numRuns: 200 },
  );
  t.pass('200 random streams, no divergence');
});

t.test('property: the LR multiplier never exceeds the boost and late-stage never boosts', async (t) => {
  const boost = defaultPolicyConfig.vanishing.lrBoost;
  fc.assert(
    fc.property(streamArb, ({ total, warmup, grads }) => {
      const r = new PolicyRunner();
      grads.forEach((g, i) => {
        const { plan } = r.step(ev(i + 1, g, { totalSteps: total, warmupSteps: warmup }));
        if (plan.lrMultiplier > boost || plan.lrMultiplier < 1) throw new Error(`lr multiplier ${plan.lrMultiplier}`);
        if (plan.state === 'late-stage' && plan.lrMultiplier !== 1) throw new Error('late-stage boosted the LR');
        if (plan.state === 'warmup' && plan.noiseStd !== 0) throw new Error('warmup intervened');
      });
    }),
    { numRuns: 200 },
  );
  t.pass('200 random streams respect the LR bounds');
});

t.test('property: a snapshot restored at any step continues identically', async (t) => {
  fc.assert(
    fc.property(streamArb, fc.nat(), ({ total, warmup, grads }, cut) => {
      const k = cut % grads.length;
      const full = new PolicyRunner();
      const plansFull = grads.map((g, i) => full.step(ev(i + 1, g, { totalSteps: total, warmupSteps: warmup })).plan);
      const first = new PolicyRunner();
      for (let i = 0; i < k; i++) first.step(ev(i + 1, grads[i]!, { totalSteps: total, warmupSteps: warmup }));
      const saved = JSON.parse(JSON.stringify(first.persist()));
      const resumed = new PolicyRunner(undefined, saved);
      for (let i = k; i < grads.length; i++) {
        const p = resumed.step(ev(i + 1, grads[i]!, { totalSteps: total, warmupSteps: warmup })).plan;
        if (JSON.stringify(p) !== JSON.stringify(plansFull[i])) throw new Error(`resumed run differs at step ${i + 1}`);
      }
    }),
    { numRuns: 200 },
  );
  t.pass('200 random cut points resume identically');
});

t.test('plan digests differ when a decision differs', async (t) => {
  const a = new PolicyRunner().step(ev(20, 1e-3)).plan;
  const b = new PolicyRunner().step(ev(20, 1e-7)).plan;
  t.not(planDigest(a), planDigest(b));
  t.equal(planDigest(a), planDigest({ ...a }));
});
