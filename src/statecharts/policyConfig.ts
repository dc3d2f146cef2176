/**
 * Settings of the training-policy statechart (the `gradient_policy:` section of a job config),
 * with REFERENCE §5's defaults. Pure data: no I/O, no defaults read from the environment.
 */
export type CentralizeScope = 'linear' | 'all' | 'none';

export interface PolicyConfig {
  /** false: the machine still tracks the phase, but never intervenes (plain training). */
  enabled: boolean;
  vanishing: {
    /** enter vanishing-intervention when grad_mean < threshold (main phase) */
    threshold: number;
    /** hysteresis: once in the state, leave only when grad_mean >= exitThreshold (>= threshold) */
    exitThreshold: number;
    noiseStd: number;
    /** tensors whose mean |g| is below this are scaled by scaleFactor */
    scaleThreshold: number;
    scaleFactor: number;
    /** multiplies the scheduled LR while in the state (never compounds) */
    lrBoost: number;
  };
  lateStage: {
    /** late stage: step > startFraction * total steps */
    startFraction: number;
    vanishingThreshold: number;
    /** hysteresis for the late-stage intervention, as vanishing.exitThreshold */
    exitThreshold: number;
    noiseStd: number;
    scaleThreshold: number;
    scaleFactor: number;
  };
  explode: {
    /** explode-clip while grad_mean > threshold, in any phase */
    threshold: number;
    /** clip the global L2 norm to this value while exploding */
    clipNorm: number;
  };
  centralize: CentralizeScope;
  /** consecutive steps with non-finite gradients before escalating to the supervisor */
  nonfinitePatience: number;
}

export const defaultPolicyConfig: PolicyConfig = {
  enabled: true,
  vanishing: { threshold: 1e-4, exitThreshold: 1.5e-4, noiseStd: 1e-4, scaleThreshold: 1e-4, scaleFactor: 1.5, lrBoost: 1.2 },
  lateStage: { startFraction: 0.9, vanishingThreshold: 1e-5, exitThreshold: 1.5e-5, noiseStd: 1e-5, scaleThreshold: 1e-4, scaleFactor: 1.1 },
  explode: { threshold: 5.0, clipNorm: 1.0 },
  centralize: 'linear',
  nonfinitePatience: 3,
};
