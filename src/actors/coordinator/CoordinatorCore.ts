/**
 * What the coordinator's frame handlers (agentFrames.ts, rankFrames.ts) work on: the job, the
 * control link, the heartbeat monitor, the rendezvous store, the tables of agents and ranks, the
 * job statechart and the event log. The coordinator owns every one of these and builds this view
 * of them once it has bound its socket; the handlers own nothing.
 */
import type { Actor } from 'xstate';
import type { JobSpec } from '../../config/JobSpec.js';
import type { jobMachine } from '../../statecharts/job.js';
import type { HeartbeatMonitor } from '../../transport/HeartbeatMonitor.js';
import type { BodyOf } from '../../transport/messages.js';
import type { PeerId, Transport } from '../../transport/Transport.js';
import type { Clock } from '../../util/Clock.js';
import type { EventLog } from '../events/EventLog.js';
import type { KvStore } from '../KvStore.js';
import type { ChildHandle } from '../Supervisor.js';
import type { HostSlot, RankExits, RemoteRank } from './RemoteRank.js';

/** How long a failure that looks secondary (a communication error) waits for its root cause. */
export const SECONDARY_FAILURE_GRACE_MS = 500;

export interface AgentEntry {
  peer: PeerId;
  handle: ChildHandle | null;
  joined: boolean;
}

export interface CoordinatorCore {
  readonly job: JobSpec;
  readonly hosts: readonly HostSlot[];
  readonly world: number;
  readonly clock: Clock;
  readonly events: EventLog;
  readonly link: Transport;
  readonly monitor: HeartbeatMonitor;
  readonly kv: KvStore;
  readonly agents: Map<number, AgentEntry>;
  /** the current incarnation of every rank */
  readonly ranks: Map<number, RemoteRank>;
  readonly exits: RankExits;
  /** ranks of the current attempt that reported ready */
  readonly ready: Set<number>;
  readonly finalHashes: (string | undefined)[];
  /** hosts whose node agent exited: nobody is left there to confirm a rank's exit */
  readonly deadAgents: Set<number>;
  readonly chart: Actor<typeof jobMachine>;
  /** the welcome for an agent (no attempt) or a rank (its attempt) */
  welcome(attempt?: number): BodyOf<'peer.welcome'>;
  /** an agent said hello: the join phase may be over */
  agentJoined(): void;
  /** a rank's step report, for aggregation */
  stepReport(rank: number, body: BodyOf<'rank.step.done'>): void;
  /** rank 0's evaluation report */
  evalReport(body: BodyOf<'rank.eval.done'>): void;
  /** a rank's final report of success */
  rankDone(rank: number, body: BodyOf<'rank.done'>): void;
  /** a frame from a node agent: it is there (again) */
  agentHeard(hostIndex: number): void;
  /** fails the whole job at once (no restart) */
  fail(reason: string, kind: JobFailureKind): void;
}

/** Why a job failed without its supervisor giving up. */
export type JobFailureKind = 'diverged' | 'interrupted' | 'error' | 'deterministic';
