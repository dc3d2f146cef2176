/**
 * What a Coordinator is given (the job, the hosts, how ranks are launched, observers) and what its
 * run returns. Types only.
 */
import type { JobSpec } from '../../config/JobSpec.js';
import type { Frame } from '../../transport/FrameCodec.js';
import type { PeerId, Transport } from '../../transport/Transport.js';
import type { Clock } from '../../util/Clock.js';
import type { Logger } from '../../util/Logger.js';
import type { Launcher } from '../launchers/Launcher.js';
import type { GiveUpReport } from '../Supervisor.js';
import type { JobFailureKind } from './CoordinatorCore.js';
import type { HostSlot } from './RemoteRank.js';
import type { EvalRow, MetricsRow } from './StepAggregator.js';

export interface CoordinatorOptions {
  /** the job; it writes to job.config.output_dir */
  job: JobSpec;
  hosts: HostSlot[];
  launcher: Launcher;
  logger: Logger;
  clock?: Clock;
  /** which workload the ranks run (`train`, or `synthetic` for control-plane tests) */
  workload?: string;
  /** extra environment for every rank */
  rankEnv?: Record<string, string>;
  /**
   * Job key file: used when it exists (a key made beforehand, e.g. a Kubernetes secret), else
   * created there (mode 0600) and removed at the end. Default: a fresh key in a private temp dir.
   */
  jobKeyFile?: string;
  /** called with every metrics.jsonl row (rank 0's figures of each completed step) */
  onStep?(row: MetricsRow): void;
  /** called with every evaluation (its metrics.jsonl row: step, eval_loss, ...) */
  onEval?(row: EvalRow): void;
  /** sees every valid frame the coordinator receives (benchmarks, diagnostics); must not throw */
  onFrame?(f: Frame, from: PeerId): void;
  /** wraps the coordinator's control transport (the chaos harness's fault proxy); default none */
  wrapTransport?(t: Transport): Transport;
}

export interface JobResult {
  ok: boolean;
  state: string;
  reason: string | null;
  /** how the job failed without its supervisor giving up (deterministic: no restart was tried) */
  failure?: JobFailureKind;
  restarts: number;
  giveUp?: GiveUpReport;
  finalHashes: (string | undefined)[];
  lastStep: number;
  /** rank 0's final report: steps this attempt trained, and what it says about the result */
  trained?: number;
  note?: string;
}
