/**
 * The training-policy statechart (REFERENCE §5): once per optimizer step, after gradients are
 * reduced and before clipping and the optimizer, it takes the reduced gradient statistics and
 * the step, moves between warmup / normal / vanishing-intervention / late-stage / explode-clip,
 * and emits a plan that the engine applies in native code.
 *
 * A pure definition: no I/O, no clocks, no randomness. The plan for a step is a function of the
 * current snapshot and the event only, so every replica that feeds the same reduced statistics
 * makes the same decision, and a snapshot restored from a checkpoint continues identically.
 *
 * Priority of the checks on every step (first match wins):
 *   1. non-finite gradients      -> skip the update, stay in the state (escalate after patience)
 *   2. grad_mean > explode       -> explode-clip (any phase; lasts while grad_mean stays high)
 *   3. step <= warmup steps      -> warmup (no vanishing interventions: early gradients are noisy)
 *   4. step > 0.9 * total steps  -> late-stage (vanishing judged with its own smaller threshold)
 *   5. grad_mean < vanishing     -> vanishing-intervention (left only at grad_mean >= exitThreshold)
 *   6. otherwise                 -> normal
 */
import { assign, setup } from 'xstate';
import { defaultPolicyConfig, type CentralizeScope, type PolicyConfig } from './policyConfig.js';

/** Reduced (global) gradient statistics of one optimizer step. */
export interface GradStatsInput {
  gradMean: number;
  l2Norm: number;
  maxAbs: number;
  nonfinite: number;
}

export interface PolicyStepEvent {
  type: 'policy.step';
  /** 1-based optimizer step being decided */
  step: number;
  /** total optimizer steps of the schedule (epochs x batches / accumulation, or max_steps) */
  totalSteps: number;
  /** warmup steps of the LR schedule (0: no warmup phase) */
  warmupSteps: number;
  /** the job's max_grad_norm (0 disables clipping outside explode-clip) */
  maxGradNorm: number;
  /** the job's seed (noise is keyed by seed, step and tensor index) */
  seed: number;
  stats: GradStatsInput;
}

export type PolicyEvent = PolicyStepEvent;

/** Leaf state names as they appear in plans, metrics and events. */
export type PolicyStateName =
  | 'warmup'
  | 'normal'
  | 'vanishing-intervention'
  | 'late-stage'
  | 'explode-clip';

/** What the engine does to the reduced gradients and the LR for one step. */
export interface PolicyPlan {
  step: number;
  state: PolicyStateName;
  /** late-stage only: whether its (smaller-threshold) vanishing intervention is active */
  lateVanishing: boolean;
  /** do not apply this step's update (non-finite gradients) */
  skipUpdate: boolean;
  /** consecutive non-finite steps reached the patience: the supervisor must roll back */
  escalate: boolean;
  /** std of the Gaussian noise to add (0: none); keyed by (noiseSeed, step, tensor index) */
  noiseStd: number;
  noiseSeed: number;
  /** tensors whose mean |g| < scaleThreshold are multiplied by scaleFactor (factor 1: none) */
  scaleThreshold: number;
  scaleFactor: number;
  /** multiplies the scheduled LR for this step only (never compounds) */
  lrMultiplier: number;
  /** clip the global L2 norm to this value (0: no clipping) */
  clipNorm: number;
  centralize: CentralizeScope;
}

export interface PolicyContext {
  config: PolicyConfig;
  plan: PolicyPlan | null;
  /** consecutive steps with non-finite gradients */
  nonfiniteStreak: number;
  /** steps skipped for non-finite gradients, in total */
  skippedSteps: number;
  /** steps with an intervention (noise, scaling, LR boost or explode clip) */
  interventions: number;
}

export interface PolicyInput {
  config?: PolicyConfig;
}

type Ctx = { context: PolicyContext; event: PolicyEvent };

// --- the checks, kept as plain functions so the guards and the tests share them -------------

const isNonfinite = ({ event }: Ctx) =>
  event.stats.nonfinite > 0 || !Number.isFinite(event.stats.gradMean) || !Number.isFinite(event.stats.l2Norm);
const isExploding = ({ context, event }: Ctx) => event.stats.gradMean > context.config.explode.threshold;
const isWarmup = ({ event }: Ctx) => event.step <= event.warmupSteps;
const isLate = ({ context, event }: Ctx) => event.step > context.config.lateStage.startFraction * event.totalSteps;
const isVanishing = ({ context, event }: Ctx) => event.stats.gradMean < context.config.vanishing.threshold;
const isLateVanishing = ({ context, event }: Ctx) =>
  event.stats.gradMean < context.config.lateStage.vanishingThreshold;
/** Healthy main-phase step: finite, not exploding, past warmup, before the late stage. */
const isMainPhase = (a: Ctx) => !isNonfinite(a) && !isExploding(a) && !isWarmup(a) && !isLate(a);
/** Hysteresis: a main-phase step that has not yet recovered to the exit threshold. */
const isStillVanishing = (a: Ctx) =>
  isMainPhase(a) && a.event.stats.gradMean < a.context.config.vanishing.exitThreshold;
const isStillLateVanishing = (a: Ctx) =>
  !isNonfinite(a) && !isExploding(a) && isLate(a) && a.event.stats.gradMean < a.context.config.lateStage.exitThreshold;

/** The plan for a step that lands in `state` (REFERENCE §5's table). */
export function planFor(config: PolicyConfig, event: PolicyStepEvent, state: PolicyStateName, lateVanishing = false): PolicyPlan {
  const plain: PolicyPlan = {
    step: event.step,
    state,
    lateVanishing,
    skipUpdate: false,
    escalate: false,
    noiseStd: 0,
    noiseSeed: event.seed,
    scaleThreshold: 0,
    scaleFactor: 1,
    lrMultiplier: 1,
    clipNorm: event.maxGradNorm > 0 ? event.maxGradNorm : 0,
    centralize: config.enabled ? config.centralize : 'none',
  };
  if (!config.enabled) return plain;
  switch (state) {
    case 'vanishing-intervention':
      return {
        ...plain,
        noiseStd: config.vanishing.noiseStd,
        scaleThreshold: config.vanishing.scaleThreshold,
        scaleFactor: config.vanishing.scaleFactor,
        lrMultiplier: config.vanishing.lrBoost,
      };
    case 'late-stage':
      // Late stage never boosts the LR; its vanishing intervention is gentler.
      return lateVanishing
        ? {
            ...plain,
            noiseStd: config.lateStage.noiseStd,
            scaleThreshold: config.lateStage.scaleThreshold,
            scaleFactor: config.lateStage.scaleFactor,
          }
        : plain;
    case 'explode-clip':
      return {
        ...plain,
        clipNorm: plain.clipNorm > 0 ? Math.min(plain.clipNorm, config.explode.clipNorm) : config.explode.clipNorm,
      };
    default:
      return plain;
  }
}

function isIntervention(p: PolicyPlan): boolean {
  return p.noiseStd > 0 || p.scaleFactor !== 1 || p.lrMultiplier !== 1 || p.state === 'explode-clip';
}

function decided(context: PolicyContext, plan: PolicyPlan): Partial<PolicyContext> {
  return { plan, nonfiniteStreak: 0, interventions: context.interventions + (isIntervention(plan) ? 1 : 0) };
}

export const trainingPolicyMachine = setup({
  types: {
    context: {} as PolicyContext,
    events: {} as PolicyEvent,
    input: {} as PolicyInput,
  },
  guards: {
    nonfinite: isNonfinite,
    exploding: isExploding,
    inWarmup: isWarmup,
    lateVanishing: (a) => isLate(a) && isLateVanishing(a),
    inLateStage: isLate,
    vanishing: isVanishing,
    stillVanishing: isStillVanishing,
    stillLateVanishing: isStillLateVanishing,
  },
  actions: {
    plan: assign(({ context, event }, params: { state: PolicyStateName; lateVanishing?: boolean }) =>
      decided(context, planFor(context.config, event, params.state, params.lateVanishing ?? false)),
    ),
    skip: assign(({ context, event }) => {
      const streak = context.nonfiniteStreak + 1;
      const current = context.plan?.state ?? 'warmup';
      const plan: PolicyPlan = {
        ...planFor(context.config, event, current, context.plan?.lateVanishing ?? false),
        skipUpdate: true,
        escalate: streak >= context.config.nonfinitePatience,
        noiseStd: 0,
        scaleFactor: 1,
        scaleThreshold: 0,
        lrMultiplier: 1,
      };
      return { plan, nonfiniteStreak: streak, skippedSteps: context.skippedSteps + 1 };
    }),
  },
}).createMachine({
  id: 'policy',
  context: ({ input }) => ({
    config: input?.config ?? defaultPolicyConfig,
    plan: null,
    nonfiniteStreak: 0,
    skippedSteps: 0,
    interventions: 0,
  }),
  initial: 'warmup',
  // Root handlers: evaluated in order when the current state has no enabled handler of its own.
  on: {
    'policy.step': [
      { guard: 'nonfinite', actions: 'skip' },
      { guard: 'exploding', target: '.explode-clip', actions: { type: 'plan', params: { state: 'explode-clip' } } },
      { guard: 'inWarmup', target: '.warmup', actions: { type: 'plan', params: { state: 'warmup' } } },
      {
        guard: 'lateVanishing',
        target: '.late-stage.vanishing',
        actions: { type: 'plan', params: { state: 'late-stage', lateVanishing: true } },
      },
      { guard: 'inLateStage', target: '.late-stage.steady', actions: { type: 'plan', params: { state: 'late-stage' } } },
      {
        guard: 'vanishing',
        target: '.vanishing-intervention',
        actions: { type: 'plan', params: { state: 'vanishing-intervention' } },
      },
      { target: '.normal', actions: { type: 'plan', params: { state: 'normal' } } },
    ],
  },
  states: {
    warmup: { description: 'step <= LR warmup steps: schedule LR, max_grad_norm clip, no vanishing interventions' },
    normal: { description: 'healthy gradients: schedule LR, max_grad_norm clip' },
    'vanishing-intervention': {
      description: 'grad_mean < threshold: noise, scale small tensors, LR x boost; left at grad_mean >= exit threshold',
      on: {
        'policy.step': {
          guard: 'stillVanishing',
          actions: { type: 'plan', params: { state: 'vanishing-intervention' } },
        },
      },
    },
    'late-stage': {
      description: 'last 10% of steps: never boosts the LR; gentler vanishing intervention',
      initial: 'steady',
      states: {
        steady: {},
        vanishing: {
          on: {
            'policy.step': {
              guard: 'stillLateVanishing',
              actions: { type: 'plan', params: { state: 'late-stage', lateVanishing: true } },
            },
          },
        },
      },
    },
    'explode-clip': { description: 'grad_mean > explode threshold: clip the global L2 norm to clip_norm' },
  },
});

/** The leaf state name (as used in plans) of a snapshot value. */
export function policyStateName(value: unknown): PolicyStateName {
  if (typeof value === 'string') return value as PolicyStateName;
  return Object.keys(value as Record<string, unknown>)[0] as PolicyStateName;
}
