/**
 * Learning-rate schedules with Hugging Face semantics (`get_scheduler`): linear, cosine (half a
 * cycle), constant and constant_with_warmup, linear warmup from 0, and the step counts a job
 * derives from its config (total optimizer steps, warmup steps). Pure functions of numbers; must
 * never keep state, so a resumed run computes exactly the LR of an uninterrupted one.
 *
 * Step convention: optimizer steps are numbered from 1. As in HF Trainer (where the scheduler
 * advances after each optimizer step), step k uses the multiplier lambda(k - 1): the first update
 * of a run with warmup uses LR 0.
 */

export type SchedulerType = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';

export interface ScheduleConfig {
  type: SchedulerType;
  /** peak learning rate (already including --adjust-lr) */
  learningRate: number;
  totalSteps: number;
  warmupSteps: number;
}

/** HF: warmup_steps when > 0, else ceil(warmup_ratio * total steps). */
export function warmupStepsOf(totalSteps: number, warmupSteps: number, warmupRatio: number): number {
  if (warmupSteps > 0) return warmupSteps;
  return Math.ceil(totalSteps * warmupRatio);
}

/**
 * Optimizer steps of the job: max_steps when > 0, else
 * ceil(num_train_epochs * micro-batches per epoch / gradient_accumulation_steps), at least 1.
 */
export function totalStepsOf(o: { maxSteps: number; epochs: number; batchesPerEpoch: number; accumulation: number }): number {
  if (o.maxSteps > 0) return o.maxSteps;
  if (!(o.batchesPerEpoch > 0)) throw new Error(`cannot derive the training length: the data gives ${o.batchesPerEpoch} micro-batches per epoch`);
  return Math.max(1, Math.ceil((o.epochs * o.batchesPerEpoch) / o.accumulation));
}

/** The multiplier of the peak LR after `done` completed optimizer steps (HF's lr_lambda). */
export function lrLambda(type: SchedulerType, done: number, totalSteps: number, warmupSteps: number): number {
  if (type === 'constant') return 1;
  if (done < warmupSteps) return done / Math.max(1, warmupSteps);
  switch (type) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - done) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': {
      const progress = (done - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
  }
}

/** The scheduled LR of optimizer step `step` (1-based), before any policy multiplier. */
export function scheduledLr(s: ScheduleConfig, step: number): number {
  return s.learningRate * lrLambda(s.type, step - 1, s.totalSteps, s.warmupSteps);
}

/** The schedule of a job (JobConfig keys), given the data's micro-batches per epoch. */
export function scheduleOf(
  c: { lr_scheduler_type: SchedulerType; learning_rate: number; max_steps: number; num_train_epochs: number; gradient_accumulation_steps: number; warmup_steps: number; warmup_ratio: number },
  batchesPerEpoch: number,
): ScheduleConfig {
  const totalSteps = totalStepsOf({ maxSteps: c.max_steps, epochs: c.num_train_epochs, batchesPerEpoch, accumulation: c.gradient_accumulation_steps });
  // HF's `constant` schedule has no warmup; the policy's warmup phase follows the schedule's.
  const warmupSteps = c.lr_scheduler_type === 'constant' ? 0 : warmupStepsOf(totalSteps, c.warmup_steps, c.warmup_ratio);
  return { type: c.lr_scheduler_type, learningRate: c.learning_rate, totalSteps, warmupSteps };
}
