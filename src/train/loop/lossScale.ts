/**
 * A testing switch that makes gradients vanish on purpose: `"FROM-TO:FACTOR[,FROM-TO:FACTOR...]"`
 * multiplies the loss (and so every gradient) by FACTOR on optimizer steps FROM..TO inclusive.
 * It drives the gradient policy into and out of vanishing-intervention in a real job. It is the
 * same on every rank (a pure function of the step), so replicas stay identical. Must never be on
 * unless the job asks for it.
 */

export interface LossScaleRange {
  from: number;
  to: number;
  factor: number;
}

export class LossScaleSpecError extends Error {
  readonly code = 'ERR_CONFIG';
}

export function parseLossScale(spec: string | null | undefined): LossScaleRange[] {
  if (spec === null || spec === undefined || spec.trim() === '') return [];
  return spec.split(',').map((part) => {
    const m = /^\s*(\d+)\s*-\s*(\d+)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$/.exec(part);
    const factor = m ? Number(m[3]) : NaN;
    if (!m || !(factor > 0) || !Number.isFinite(factor) || Number(m[1]) > Number(m[2])) {
      throw new LossScaleSpecError(`loss scale switch ${JSON.stringify(part)}: expected FROM-TO:FACTOR with FROM <= TO and FACTOR > 0, e.g. "6-12:1e-6"`);
    }
    return { from: Number(m[1]), to: Number(m[2]), factor };
  });
}

/** The loss multiplier of optimizer step `step` (1 outside every range). */
export function lossScaleAt(ranges: readonly LossScaleRange[], step: number): number {
  let f = 1;
  for (const r of ranges) if (step >= r.from && step <= r.to) f *= r.factor;
  return f;
}
