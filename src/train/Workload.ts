/**
 * What a rank runs between rendezvous and exit: the training loop (trainWorkload.ts) or, for
 * tests of the control plane, a synthetic job (src/actors/rank/syntheticWorkload.ts). The rank
 * runtime supplies the context; a workload reports progress through it and must stop promptly
 * when `signal` aborts (between steps at the latest). Types only.
 */
import type { JobSpec } from '../config/JobSpec.js';
import type { RendezvousStore } from '../engine/stores.js';
import type { BodyOf } from '../transport/messages.js';
import type { Logger } from '../util/Logger.js';
import type { ChaosHooks } from './ChaosHooks.js';

/** A finished optimizer step as reported to the coordinator: the `rank.step.done` body. */
export type StepReport = BodyOf<'rank.step.done'>;
/** A policy statechart transition: the `rank.policy.transition` body. */
export type TransitionReport = BodyOf<'rank.policy.transition'>;
/** A committed checkpoint: the `rank.checkpoint.written` body. */
export type CheckpointReport = BodyOf<'rank.checkpoint.written'>;
/** An evaluation's metrics (rank 0 reports them): the `rank.eval.done` body. */
export type EvalReport = BodyOf<'rank.eval.done'>;

export interface WorkloadContext {
  rank: number;
  world: number;
  localRank: number;
  localRanks: number;
  /** restart attempt of the group (0 on the first start) */
  incarnation: number;
  /** this rank's host as the hostfile names it: the address its data plane listens on (undefined: loopback) */
  host?: string;
  /** the job, as the coordinator sent it (parsed once by the rank) */
  job: JobSpec;
  logger: Logger;
  signal: AbortSignal;
  /** key-value store for the data plane's rendezvous, namespaced for this attempt */
  store: RendezvousStore;
  /** report a finished optimizer step (the heartbeat then carries it too) */
  reportStep(r: StepReport): void;
  reportTransition(t: TransitionReport): void;
  reportCheckpoint(c: CheckpointReport): void;
  /** report an evaluation (rank 0; the coordinator writes its row to metrics.jsonl) */
  reportEval?(e: EvalReport): void;
  /** the phase shown in heartbeats (`rendezvous`, `training`, `checkpointing`, ...) */
  setPhase(phase: string, busy?: boolean): void;
  /** fault injection (ulysses-actors chaos): absent unless a fault plan is loaded */
  chaos?: ChaosHooks;
}

export interface WorkloadResult {
  step: number;
  /** e.g. a hash of the final weights, for fault-free comparisons */
  finalHash?: string;
  /** optimizer steps this attempt ran (0: it resumed a checkpoint already at the end) */
  trained?: number;
  /** what the user should read about the result (shown by `up`) */
  note?: string;
}

export type Workload = (ctx: WorkloadContext) => Promise<WorkloadResult>;
