/**
 * What a rank runs between rendezvous and exit: the training loop (src/train) or, for tests of
 * the control plane, a synthetic job. A workload reports progress through the context and must
 * stop promptly when `signal` aborts (between steps at the latest).
 */
import type { Logger } from '../../util/Logger.js';
import type { ChaosHooks } from '../../chaos/ChaosHooks.js';

export interface StepReport {
  step: number;
  loss: number;
  tokens: number;
  planDigest: string;
  policyState: string;
  stats?: Record<string, unknown>;
  stepMs?: number;
}

export interface RendezvousStore {
  set(key: string, value: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array>;
  wait(keys: string[], timeoutMs: number): Promise<Uint8Array[]>;
}

export interface WorkloadContext {
  rank: number;
  world: number;
  localRank: number;
  localRanks: number;
  /** restart attempt of the group (0 on the first start) */
  incarnation: number;
  /** the resolved job configuration, as the coordinator sent it */
  config: Record<string, unknown>;
  logger: Logger;
  signal: AbortSignal;
  /** key-value store for the data plane's rendezvous, namespaced for this attempt */
  store: RendezvousStore;
  /** report a finished optimizer step (the heartbeat then carries it too) */
  reportStep(r: StepReport): void;
  /** report a policy statechart transition */
  reportTransition(t: { step: number; from: string; to: string; reason?: string }): void;
  reportCheckpoint(c: { step: number; path: string; checksum: string }): void;
  /** the phase shown in heartbeats (`rendezvous`, `training`, `checkpointing`, ...) */
  setPhase(phase: string, busy?: boolean): void;
  /** fault injection (ulysses-actors chaos): absent or inert unless a fault plan is loaded */
  chaos?: ChaosHooks;
}

export interface WorkloadResult {
  step: number;
  /** e.g. a hash of the final weights, for fault-free comparisons */
  finalHash?: string;
}

export type Workload = (ctx: WorkloadContext) => Promise<WorkloadResult>;
