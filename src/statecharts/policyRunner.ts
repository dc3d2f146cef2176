/**
 * Drives the training-policy machine one optimizer step at a time with XState's pure
 * `transition()`: no actor, no timers, no side effects. Used by the rank (which applies the plan)
 * and by tests. The persisted form is plain JSON and goes into every checkpoint.
 */
import { createHash } from 'node:crypto';
import { initialTransition, transition, type SnapshotFrom } from 'xstate';
import type { PolicyConfig } from './policyConfig.js';
import {
  policyStateName,
  trainingPolicyMachine,
  type PolicyPlan,
  type PolicyStateName,
  type PolicyStepEvent,
} from './trainingPolicy.js';

export type PolicySnapshot = SnapshotFrom<typeof trainingPolicyMachine>;

/** What a checkpoint stores: the state value and the context (config included). */
export interface PersistedPolicy {
  version: 1;
  value: unknown;
  context: PolicySnapshot['context'];
}

export interface PolicyTransition {
  plan: PolicyPlan;
  from: PolicyStateName;
  to: PolicyStateName;
  /** the full state path, e.g. "late-stage.vanishing" */
  path: string;
}

function pathOf(value: unknown): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value as Record<string, unknown>)[0]!;
  return `${k}.${pathOf(v)}`;
}

export class PolicyRunner {
  private snap: PolicySnapshot;

  constructor(config?: PolicyConfig, persisted?: PersistedPolicy) {
    if (persisted) {
      if (persisted.version !== 1) throw new Error(`unsupported policy snapshot version ${String(persisted.version)}`);
      this.snap = trainingPolicyMachine.resolveState({ value: persisted.value as never, context: persisted.context });
    } else {
      [this.snap] = initialTransition(trainingPolicyMachine, { config });
    }
  }

  get state(): PolicyStateName {
    return policyStateName(this.snap.value);
  }

  get path(): string {
    return pathOf(this.snap.value);
  }

  get context(): PolicySnapshot['context'] {
    return this.snap.context;
  }

  /** Decide one optimizer step. */
  step(e: Omit<PolicyStepEvent, 'type'>): PolicyTransition {
    const from = this.state;
    const [next] = transition(trainingPolicyMachine, this.snap, { type: 'policy.step', ...e });
    this.snap = next;
    const plan = next.context.plan;
    if (!plan || plan.step !== e.step) throw new Error(`policy produced no plan for step ${e.step}`);
    return { plan, from, to: this.state, path: this.path };
  }

  persist(): PersistedPolicy {
    return JSON.parse(JSON.stringify({ version: 1, value: this.snap.value, context: this.snap.context })) as PersistedPolicy;
  }
}

/** A short digest of a plan that every replica reports; any difference means divergence. */
export function planDigest(plan: PolicyPlan): string {
  const keys = Object.keys(plan).sort() as (keyof PolicyPlan)[];
  const canonical = keys.map((k) => `${k}=${typeof plan[k] === 'number' ? (plan[k] as number).toString() : String(plan[k])}`).join(';');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}
