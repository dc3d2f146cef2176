/**
 * Job events: every control-plane event of a run, as a discriminated union of namespaced types
 * (`job.state`, `rank.policy.transition`, `job.rank.failed`, `chaos.injected`, ...) built by the
 * small constructors below. The coordinator and the chaos harness emit them, the event log
 * writes them to events.ndjson (one JSON object per line: `type`, then `time` and `t`, then the
 * fields, exactly as the browser client and the tests read them), the visualizer's server
 * streams them, and the chaos harness analyses them. Pure data; must never do I/O.
 */

/** Where a rank lives, as `job.started` lists the hosts. */
export interface HostSlots {
  host: string;
  slots: number;
}

/** How a rank failure was noticed; the fields differ by the observer. */
export type RankFailure =
  | { detectedBy: 'heartbeat'; rank: number; incarnation: number; reason: string }
  | { detectedBy: 'rank'; rank: number; incarnation: number; reason: string; code?: string }
  | { detectedBy: 'agent'; rank: number; incarnation: number; code: number | null; signal: string | null; reason: string; stderrTail?: string };

/** The fields of each event type (besides `type`, `time` and `t`). */
export interface JobEventFields {
  'job.state': { state: string; attempt: number };
  'job.started': { world: number; hosts: HostSlots[]; url: string; bound: string; jobId: string; pid?: number; configHash?: string };
  'job.restarted': { attempt: number; cause: string; reason: string; restarted: string[] };
  'job.failed': { reason: string; kind: 'diverged' | 'interrupted' | 'error' | 'deterministic' };
  /** one per optimizer step, rank 0's figures (metrics.jsonl holds the full row) */
  'job.step': { step: number; loss: number; policy_state: string };
  /** an evaluation after a step (metrics.jsonl holds the same row): eval_loss, eval_accuracy, eval_rewards/..., epoch */
  'job.eval': { step: number; metrics: Record<string, number> };
  'job.rank.failed': RankFailure;
  'agent.joined': { host: string; hostIndex: number; pid: number };
  /** a node agent missed its heartbeats (silent: the coordinator waits up to the grace) or was heard again (back) */
  'agent.silent': { host: string; hostIndex: number; reason: string };
  'agent.back': { host: string; hostIndex: number; silentMs: number };
  'rank.spawn': { rank: number; incarnation: number; host: string };
  'rank.joined': { rank: number; incarnation: number; pid: number };
  'rank.exited': { rank: number; incarnation: number; code: number | null; signal: string | null; reason: string; detectedBy: 'agent' };
  'rank.unconfirmed_stop': { rank: number; incarnation: number; waitedMs: number };
  'rank.policy.transition': { rank: number; step: number; from: string; to: string; reason?: string };
  'rank.done': { rank: number; step: number; finalHash?: string; trained?: number };
  'checkpoint.committed': { rank: number; step: number; path: string; checksum: string };
  /** a fault of a plan fired: by the harness, or by a rank (side 'rank', with when it fired) */
  'chaos.injected': { fault: number; kind: string; ranks: number[]; step: number | null; side?: 'rank'; firedAt?: string };
  'chaos.resumed': { fault: number; kind: string; ranks: number[] };
  'chaos.checkpoint.corrupted': { fault: number; step: number; file: string; mode: string; attempt: number };
}

export type JobEventType = keyof JobEventFields;

/** An event as it is built, before the log stamps it. */
export type JobEventBody = { [K in JobEventType]: { type: K } & JobEventFields[K] }[JobEventType];

/** The stamps the log adds: wall-clock time (ISO) and milliseconds since the job started. */
export interface EventStamp {
  time: string;
  t: number;
}

/** An event as the log holds it and writes it. */
export type JobEvent = JobEventBody & EventStamp;

/** The logged event of one type. */
export type EventOf<K extends JobEventType> = Extract<JobEventBody, { type: K }> & EventStamp;

/** A type guard for filtering logged events by type: `events.filter(isEvent('job.step'))`. */
export const isEvent =
  <K extends JobEventType>(type: K) =>
  (e: JobEvent): e is EventOf<K> =>
    e.type === type;

/** The first logged event of a type that satisfies `pred`. */
export function firstEvent<K extends JobEventType>(events: readonly JobEvent[], type: K, pred: (e: EventOf<K>) => boolean = () => true): EventOf<K> | undefined {
  return events.filter(isEvent(type)).find(pred);
}

/** Every logged event of a type that satisfies `pred`. */
export function eventsOf<K extends JobEventType>(events: readonly JobEvent[], type: K, pred: (e: EventOf<K>) => boolean = () => true): EventOf<K>[] {
  return events.filter(isEvent(type)).filter(pred);
}

/** The constructors, one per event type: `jobEvents.rankFailed({ ... })`. */
export const jobEvents = {
  state: (f: JobEventFields['job.state']) => ({ type: 'job.state' as const, ...f }),
  started: (f: JobEventFields['job.started']) => ({ type: 'job.started' as const, ...f }),
  restarted: (f: JobEventFields['job.restarted']) => ({ type: 'job.restarted' as const, ...f }),
  failed: (f: JobEventFields['job.failed']) => ({ type: 'job.failed' as const, ...f }),
  step: (f: JobEventFields['job.step']) => ({ type: 'job.step' as const, ...f }),
  eval: (f: JobEventFields['job.eval']) => ({ type: 'job.eval' as const, ...f }),
  rankFailed: (f: JobEventFields['job.rank.failed']) => ({ type: 'job.rank.failed' as const, ...f }),
  agentJoined: (f: JobEventFields['agent.joined']) => ({ type: 'agent.joined' as const, ...f }),
  agentSilent: (f: JobEventFields['agent.silent']) => ({ type: 'agent.silent' as const, ...f }),
  agentBack: (f: JobEventFields['agent.back']) => ({ type: 'agent.back' as const, ...f }),
  rankSpawn: (f: JobEventFields['rank.spawn']) => ({ type: 'rank.spawn' as const, ...f }),
  rankJoined: (f: JobEventFields['rank.joined']) => ({ type: 'rank.joined' as const, ...f }),
  rankExited: (f: JobEventFields['rank.exited']) => ({ type: 'rank.exited' as const, ...f }),
  rankUnconfirmedStop: (f: JobEventFields['rank.unconfirmed_stop']) => ({ type: 'rank.unconfirmed_stop' as const, ...f }),
  policyTransition: (f: JobEventFields['rank.policy.transition']) => ({ type: 'rank.policy.transition' as const, ...f }),
  rankDone: (f: JobEventFields['rank.done']) => ({ type: 'rank.done' as const, ...f }),
  checkpointCommitted: (f: JobEventFields['checkpoint.committed']) => ({ type: 'checkpoint.committed' as const, ...f }),
  chaosInjected: (f: JobEventFields['chaos.injected']) => ({ type: 'chaos.injected' as const, ...f }),
  chaosResumed: (f: JobEventFields['chaos.resumed']) => ({ type: 'chaos.resumed' as const, ...f }),
  chaosCheckpointCorrupted: (f: JobEventFields['chaos.checkpoint.corrupted']) => ({ type: 'chaos.checkpoint.corrupted' as const, ...f }),
} satisfies Record<string, (f: never) => JobEventBody>;
