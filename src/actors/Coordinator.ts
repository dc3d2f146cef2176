/**
 * The coordinator (inside `ulysses-actors up`): binds the control plane (ROUTER, CURVE), starts a
 * node agent per host, serves the rendezvous store, supervises the ranks one_for_all with restart
 * intensity, detects failures (exit reports, missed heartbeats, hangs, replica divergence),
 * aggregates per-step reports into metrics.jsonl and logs every event to events.ndjson.
 * It runs the job statechart (src/statecharts/job.ts). It never leaves a process of the job
 * running when it returns.
 */
import { mkdir, mkdtemp, rm, appendFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createActor } from 'xstate';
import type { Clock } from '../util/Clock.js';
import { systemClock } from '../util/Clock.js';
import type { Logger } from '../util/Logger.js';
import { createJobKeys, readJobKeys, writeJobKeys, type JobKeys } from '../transport/keys.js';
import { RouterEndpoint } from '../transport/ZmqEndpoints.js';
import type { Frame } from '../transport/FrameCodec.js';
import type { PeerId, Transport } from '../transport/Transport.js';
import { HeartbeatMonitor } from '../transport/HeartbeatMonitor.js';
import { jobMachine } from '../statecharts/job.js';
import { KvStore } from './KvStore.js';
import { EventLog } from './EventLog.js';
import { Supervisor, type ChildHandle, type ChildSpec, type ExitInfo, type GiveUpReport } from './Supervisor.js';

/** How long a failure that looks secondary (a communication error) waits for its root cause. */
const SECONDARY_FAILURE_GRACE_MS = 500;

export interface HostSlot {
  host: string;
  slots: number;
}

/** Starts the node agent of one host (locally, over ssh, or by telling an external scheduler). */
export interface Launcher {
  /** null when the agent is started by someone else (the external launcher) */
  startAgent(a: { hostIndex: number; host: string; slots: number; joinUrl: string; keyFile: string }): Promise<ChildHandle | null>;
}

export interface ClusterSettings {
  heartbeatIntervalMs: number;
  missLimit: number;
  stepTimeoutMs: number;
  rendezvousTimeoutMs: number;
  maxRestarts: number;
  restartWindowMs: number;
  shutdownGraceMs: number;
  startupGraceMs: number;
  bindHost: string;
  /** the address agents and ranks dial (MASTER_ADDR) */
  advertiseHost: string;
  port: number;
}

const WILDCARD = new Set(['0.0.0.0', '*', '::', '[::]']);

export function clusterSettings(config: Record<string, unknown>): ClusterSettings {
  const c = (config.cluster ?? {}) as Record<string, unknown>;
  const n = (k: string, d: number) => (typeof c[k] === 'number' ? (c[k] as number) : d);
  // loopback unless the config asks for another address (cluster.bind_address)
  const bindHost = typeof c.bind_address === 'string' ? c.bind_address : typeof c.bind === 'string' ? c.bind : '127.0.0.1';
  return {
    heartbeatIntervalMs: n('heartbeat_interval_s', 1) * 1000,
    missLimit: n('heartbeat_miss_limit', 3),
    stepTimeoutMs: n('step_timeout_s', 600) * 1000,
    rendezvousTimeoutMs: n('rendezvous_timeout_s', 120) * 1000,
    maxRestarts: n('max_restarts', 3),
    restartWindowMs: n('restart_window_s', 600) * 1000,
    shutdownGraceMs: n('shutdown_grace_s', 3) * 1000,
    startupGraceMs: n('startup_grace_s', 30) * 1000,
    bindHost,
    advertiseHost: typeof c.advertise_address === 'string' && c.advertise_address ? c.advertise_address : WILDCARD.has(bindHost) ? hostname() : bindHost,
    port: n('coordinator_port', 0),
  };
}

export interface CoordinatorOptions {
  config: Record<string, unknown>;
  hosts: HostSlot[];
  outputDir: string;
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
  onStep?(row: Record<string, unknown>): void;
  /** sees every valid frame the coordinator receives (benchmarks, diagnostics); must not throw */
  onFrame?(f: Frame, from: PeerId): void;
  /** wraps the coordinator's control transport (the chaos harness's fault proxy); default none */
  wrapTransport?(t: Transport): Transport;
}

export interface JobResult {
  ok: boolean;
  state: string;
  reason: string | null;
  restarts: number;
  giveUp?: GiveUpReport;
  finalHashes: (string | undefined)[];
  lastStep: number;
}

interface RankSlot {
  rank: number;
  hostIndex: number;
  localRank: number;
  localRanks: number;
}

/** A rank as the supervisor sees it: lives on an agent, fails through several channels. */
class RemoteRank implements ChildHandle {
  readonly exited: Promise<ExitInfo>;
  private settle!: (e: ExitInfo) => void;
  private settled = false;
  pid: number | null = null;
  startedAt: number;
  /** set when the rank reported a communication error: its failure is probably a consequence of another's */
  secondaryAt: number | null = null;
  /** set when its agent reported the process's exit: nothing is left to stop or wait for */
  exitReported = false;

  constructor(
    readonly slot: RankSlot,
    readonly incarnation: number,
    private readonly coord: Coordinator,
    now: number,
  ) {
    this.startedAt = now;
    this.exited = new Promise((r) => (this.settle = r));
  }

  fail(exit: ExitInfo): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(exit);
  }

  get isSettled(): boolean {
    return this.settled;
  }

  async stop(reason: string): Promise<void> {
    if (this.settled && !this.pid) return;
    await this.coord.stopRank(this, reason);
  }
}

export class Coordinator {
  private readonly clock: Clock;
  private readonly cs: ClusterSettings;
  private readonly kv: KvStore;
  readonly events: EventLog;
  private router!: RouterEndpoint;
  /** what the coordinator sends and receives through: the router, or a wrapper around it */
  private link!: Transport;
  private keys!: JobKeys;
  private keyDir = '';
  private monitor!: HeartbeatMonitor;
  private job = createActor(jobMachine).start();
  private agents = new Map<number, { peer: PeerId; handle: ChildHandle | null; joined: boolean }>();
  private ranks = new Map<number, RemoteRank>();
  private readonly slots: RankSlot[];
  private supervisor: Supervisor | null = null;
  private stepReports = new Map<number, Map<number, Frame['body']>>();
  private finalHashes: (string | undefined)[] = [];
  private lastStep = 0;
  private metricsChain: Promise<void> = Promise.resolve();
  private ready = new Set<number>();
  private divergence: string | null = null;
  private hbTimer: { cancel(): void } | null = null;
  private jobFailed: ((reason: string) => void) | null = null;
  private failedEarly: string | null = null;
  private joinUrl = '';
  private exitWaiters = new Map<string, () => void>();
  readonly world: number;

  constructor(private readonly o: CoordinatorOptions) {
    this.clock = o.clock ?? systemClock;
    this.cs = clusterSettings(o.config);
    this.kv = new KvStore(this.clock);
    const t0 = this.clock.now();
    this.events = new EventLog(join(o.outputDir, 'events.ndjson'), () => this.clock.now() - t0, o.logger);
    this.slots = [];
    o.hosts.forEach((h, hostIndex) => {
      for (let l = 0; l < h.slots; l++) this.slots.push({ rank: this.slots.length, hostIndex, localRank: l, localRanks: h.slots });
    });
    this.world = this.slots.length;
    this.job.subscribe((s) => this.events.emit('job.state', { state: s.value, attempt: s.context.attempt }));
  }

  /** heartbeat checks skipped because the coordinator itself was stalled (diagnostics) */
  get monitorStalls(): number {
    return this.monitor?.stalls ?? 0;
  }

  get jobState(): string {
    return String(this.job.getSnapshot().value);
  }

  /** Runs the job to the end. */
  async run(): Promise<JobResult> {
    await mkdir(this.o.outputDir, { recursive: true });
    let keyFile: string;
    if (this.o.jobKeyFile && existsSync(this.o.jobKeyFile)) {
      keyFile = this.o.jobKeyFile;
      this.keys = await readJobKeys(keyFile);
    } else {
      this.keys = createJobKeys();
      if (this.o.jobKeyFile) {
        keyFile = this.o.jobKeyFile;
        this.createdKeyFile = keyFile;
      } else {
        this.keyDir = await mkdtemp(join(tmpdir(), 'ulysses-job-'));
        keyFile = join(this.keyDir, 'job.key');
      }
      await writeJobKeys(keyFile, this.keys);
    }
    // ZMTP heartbeats only catch dead TCP connections; liveness at the job's rate is the
    // application heartbeat's job, so they need not double the traffic at 10 Hz
    this.router = new RouterEndpoint({ keys: this.keys, logger: this.o.logger.child('router'), zmtpHeartbeatMs: Math.max(1000, this.cs.heartbeatIntervalMs) });
    this.link = this.o.wrapTransport ? this.o.wrapTransport(this.router) : this.router;
    this.link.onFrame((f, from) => this.onFrame(f, from));
    const bound = await this.router.bind(this.cs.bindHost, this.cs.port);
    this.port = Number(/:(\d+)$/.exec(bound)?.[1]);
    // a wildcard bind is dialled through the advertised address
    const url = (this.joinUrl = `tcp://${this.cs.advertiseHost}:${this.port}`);
    this.events.emit('job.started', { world: this.world, hosts: this.o.hosts, url, bound, jobId: this.keys.jobId });
    this.o.logger.info('control plane listening', { url, world: this.world });

    this.monitor = new HeartbeatMonitor({
      clock: this.clock,
      intervalMs: this.cs.heartbeatIntervalMs,
      missLimit: this.cs.missLimit,
      stepTimeoutMs: this.cs.stepTimeoutMs,
      onDead: (peer, ms) => this.onPeerLost(peer, `no heartbeat for ${Math.round(ms)} ms`),
      onHung: (peer, step, ms) => this.onPeerLost(peer, `hung: step ${step} did not advance for ${Math.round(ms)} ms`),
    });
    // the coordinator heartbeats its peers too, so they can tell when it is gone
    this.hbTimer = this.clock.setInterval(() => this.heartbeatPeers(), this.cs.heartbeatIntervalMs);

    let result: JobResult;
    try {
      result = await this.runPhases(keyFile, url);
    } finally {
      await this.shutdown();
    }
    return result;
  }

  /** The endpoint agents and ranks dial (set once run() has bound it). */
  get url(): string {
    return this.joinUrl;
  }

  private createdKeyFile: string | null = null;
  private port = 0;

  private async runPhases(keyFile: string, url: string): Promise<JobResult> {
    const failed = new Promise<string>((r) => (this.jobFailed = r));
    // an interrupt that came before the job got this far still ends it
    if (this.failedEarly !== null) return this.result(false, this.failedEarly);
    // 1. agents
    const agentsJoined = this.startAgents(keyFile, url);
    let joinTimer: { cancel(): void } | undefined;
    const joined = await Promise.race([
      agentsJoined.then(() => true),
      new Promise<boolean>((r) => (joinTimer = this.clock.setTimeout(() => r(false), this.cs.rendezvousTimeoutMs))),
      failed.then(() => false),
    ]);
    // a pending timer would keep `up` alive long after the job ended
    joinTimer?.cancel();
    if (!joined) {
      const missing = [...this.agents.entries()].filter(([, a]) => !a.joined).map(([i]) => this.o.hosts[i]!.host);
      const reason = `node agents did not join within ${this.cs.rendezvousTimeoutMs} ms: ${missing.join(', ') || 'unknown'}`;
      this.job.send({ type: 'job.gave_up', reason });
      return this.result(false, reason);
    }
    this.job.send({ type: 'job.agents.joined' });

    // 2. ranks under one_for_all supervision
    const specs: ChildSpec[] = this.slots.map((slot) => ({
      id: `rank${slot.rank}`,
      restart: 'transient',
      start: async (attempt) => this.startRank(slot, attempt),
    }));
    this.supervisor = new Supervisor(specs, {
      strategy: 'one_for_all',
      maxRestarts: this.cs.maxRestarts,
      restartWindowMs: this.cs.restartWindowMs,
      clock: this.clock,
      logger: this.o.logger.child('supervisor'),
      onRestart: (cause, restarted, attempt) => {
        this.events.emit('job.restarted', { attempt, cause: cause.child, reason: cause.exit.reason, restarted });
        this.job.send({ type: 'job.restarted', attempt });
      },
    });
    await this.supervisor.start();
    const outcome = await Promise.race([this.supervisor.done.then((d) => ({ kind: 'done' as const, d })), failed.then((reason) => ({ kind: 'failed' as const, reason }))]);
    if (outcome.kind === 'failed') return this.result(false, outcome.reason);
    if (!outcome.d.ok) {
      const f = outcome.d.report!.firstFailure;
      const reason = `restart intensity exceeded (${outcome.d.report!.restartsInWindow} restarts within ${this.cs.restartWindowMs / 1000} s); first failure: ${f.child}: ${f.exit.reason}`;
      this.job.send({ type: 'job.gave_up', reason });
      return { ...this.result(false, reason), giveUp: outcome.d.report };
    }
    this.job.send({ type: 'job.completed' });
    return this.result(true, null);
  }

  private result(ok: boolean, reason: string | null): JobResult {
    return {
      ok,
      state: this.jobState,
      reason,
      restarts: this.supervisor?.restartCount ?? 0,
      finalHashes: this.finalHashes,
      lastStep: this.lastStep,
    };
  }

  /** Fails the whole job now (no restart): divergence, interrupts, unrecoverable errors. */
  fail(reason: string, kind: 'diverged' | 'interrupted' | 'error' = 'error'): void {
    if (kind === 'diverged') this.job.send({ type: 'job.diverged', reason });
    else if (kind === 'interrupted') this.job.send({ type: 'job.interrupted' });
    else this.job.send({ type: 'job.error', reason });
    this.events.emit('job.failed', { reason, kind });
    this.failedEarly ??= reason;
    this.jobFailed?.(reason);
  }

  private async startAgents(keyFile: string, url: string): Promise<void> {
    const joinedAll = new Promise<void>((resolve) => {
      this.agentJoined = () => {
        if ([...this.agents.values()].every((a) => a.joined)) resolve();
      };
    });
    for (const [i, h] of this.o.hosts.entries()) {
      this.agents.set(i, { peer: `agent:${i}`, handle: null, joined: false });
      const handle = await this.o.launcher.startAgent({ hostIndex: i, host: h.host, slots: h.slots, joinUrl: url, keyFile });
      this.agents.get(i)!.handle = handle;
      handle?.exited.then((e) => {
        // nobody is left on that host to confirm its ranks' exits: do not wait for them
        this.deadAgents.add(i);
        for (const r of this.ranks.values()) if (r.slot.hostIndex === i) this.exitWaiters.get(`${r.slot.rank}/${r.incarnation}`)?.();
        if (this.jobState !== 'succeeded' && this.jobState !== 'failed' && !this.closing) {
          this.fail(`node agent of ${h.host} exited: ${e.reason}`);
        }
      });
    }
    return joinedAll;
  }

  private agentJoined: () => void = () => {};
  private deadAgents = new Set<number>();
  private closing = false;

  private startRank(slot: RankSlot, attempt: number): Promise<ChildHandle> {
    if (attempt > 0 && slot.rank === 0) {
      this.kv.clear(`a${attempt - 1}/`);
      this.stepReports.clear();
      this.ready.clear();
    }
    const r = new RemoteRank(slot, attempt, this, this.clock.now());
    this.ranks.set(slot.rank, r);
    const env: Record<string, string> = {
      ...(this.o.rankEnv ?? {}),
      // torchrun's names, so tools that read them work unchanged; MASTER_* is the coordinator,
      // whose store serves the rendezvous
      RANK: String(slot.rank),
      LOCAL_RANK: String(slot.localRank),
      WORLD_SIZE: String(this.world),
      LOCAL_WORLD_SIZE: String(slot.localRanks),
      GROUP_RANK: String(slot.hostIndex),
      MASTER_ADDR: this.cs.advertiseHost,
      MASTER_PORT: String(this.port),
      TORCHELASTIC_RESTART_COUNT: String(attempt),
      ULYSSES_RESTART_COUNT: String(attempt),
      ULYSSES_RANK: String(slot.rank),
      ULYSSES_WORLD: String(this.world),
      ULYSSES_LOCAL_RANK: String(slot.localRank),
      ULYSSES_LOCAL_RANKS: String(slot.localRanks),
      ULYSSES_INCARNATION: String(attempt),
      ULYSSES_WORKLOAD: this.o.workload ?? 'train',
    };
    this.link.send(`agent:${slot.hostIndex}`, 'agent.spawn', { rank: slot.rank, incarnation: attempt, env, args: [] });
    this.events.emit('rank.spawn', { rank: slot.rank, incarnation: attempt, host: this.o.hosts[slot.hostIndex]!.host });
    // a new process gets time to start up before missed heartbeats count
    this.monitor.watch(`rank:${slot.rank}`, this.cs.startupGraceMs);
    return Promise.resolve(r);
  }

  /** The shutdown ladder for a remote rank: abort message, then the agent's SIGTERM/SIGKILL. */
  async stopRank(r: RemoteRank, reason: string): Promise<void> {
    const rankPeer = `rank:${r.slot.rank}`;
    this.monitor.forget(rankPeer);
    // Its exit report came before this stop (a rank that failed on its own, whose failure still
    // waits out the secondary-failure grace): waiting for another would stall the restart.
    if (r.exitReported) return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.set(`${r.slot.rank}/${r.incarnation}`, resolve));
    if (r.pid === null && r.isSettled) return;
    if (r.isSettled) {
      // already failed (crashed, frozen, hung): no point in asking nicely
      this.link.send(`agent:${r.slot.hostIndex}`, 'agent.signal', { rank: r.slot.rank, signal: 'SIGKILL' });
    }
    this.link.send(rankPeer, 'job.command', { command: 'abort', detail: { reason } });
    // its agent is gone: the abort above (and the rank's own orphan check) is all that is left
    if (this.deadAgents.has(r.slot.hostIndex)) return;
    this.link.send(`agent:${r.slot.hostIndex}`, 'agent.stop', { rank: r.slot.rank, incarnation: r.incarnation, reason, graceMs: this.cs.shutdownGraceMs });
    const bound = 2000 + this.cs.shutdownGraceMs + 3000 + 2000;
    let t: NodeJS.Timeout | undefined;
    const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), bound)))]);
    clearTimeout(t);
    if (!ok) this.events.emit('rank.unconfirmed_stop', { rank: r.slot.rank, incarnation: r.incarnation, waitedMs: bound });
  }

  private heartbeatPeers(): void {
    for (const a of this.agents.values()) if (a.joined) this.link.send(a.peer, 'peer.heartbeat', { step: this.lastStep, phase: this.jobState, busy: false });
    for (const r of this.ranks.values()) if (!r.isSettled) this.link.send(`rank:${r.slot.rank}`, 'peer.heartbeat', { step: this.lastStep, phase: this.jobState, busy: false });
  }

  private onPeerLost(peer: PeerId, why: string): void {
    const [role, idx] = peer.split(':');
    const i = Number(idx);
    if (role === 'rank') {
      const r = this.ranks.get(i);
      if (!r || r.isSettled) return;
      this.events.emit('job.rank.failed', { rank: i, incarnation: r.incarnation, reason: why, detectedBy: 'heartbeat' });
      // the process may still be alive (frozen, hung, cut off): make sure it cannot run beside its successor
      this.link.send(`agent:${r.slot.hostIndex}`, 'agent.signal', { rank: i, signal: 'SIGKILL' });
      this.job.send({ type: 'job.rank.failed', rank: i, reason: why });
      r.fail({ normal: false, reason: why });
    } else if (role === 'agent') {
      this.fail(`node agent ${this.o.hosts[i]?.host ?? i} lost: ${why}`);
    }
  }

  private onFrame(f: Frame, from: PeerId): void {
    if (this.o.onFrame) {
      try {
        this.o.onFrame(f, from);
      } catch {
        /* an observer never breaks the coordinator */
      }
    }
    const [role] = from.split(':');
    if (role === 'agent') this.onAgentFrame(f, from);
    else if (role === 'rank') this.onRankFrame(f, from);
  }

  private onAgentFrame(f: Frame, from: PeerId): void {
    const hostIndex = f.sender;
    const a = this.agents.get(hostIndex);
    if (!a) return;
    switch (f.type) {
      case 'peer.hello':
        a.joined = true;
        this.monitor.watch(from, this.cs.heartbeatIntervalMs * 2);
        this.link.send(from, 'peer.welcome', { jobId: this.keys.jobId, world: this.world, config: this.o.config });
        this.events.emit('agent.joined', { host: this.o.hosts[hostIndex]!.host, hostIndex, pid: f.body.pid });
        this.agentJoined();
        break;
      case 'peer.heartbeat':
        this.monitor.beat(from, 0, false);
        break;
      case 'agent.rank.started': {
        const r = this.ranks.get(f.body.rank as number);
        if (r && r.incarnation === f.body.incarnation) r.pid = f.body.pid as number;
        break;
      }
      case 'agent.rank.exited': {
        const rank = f.body.rank as number;
        const inc = f.body.incarnation as number;
        this.exitWaiters.get(`${rank}/${inc}`)?.();
        this.exitWaiters.delete(`${rank}/${inc}`);
        const r = this.ranks.get(rank);
        if (!r || r.incarnation !== inc) return;
        r.exitReported = true;
        const code = (f.body.code as number | undefined) ?? null;
        const signal = (f.body.signal as string | undefined) ?? null;
        const normal = code === 0;
        const reason = normal ? 'finished' : signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.events.emit(normal ? 'rank.exited' : 'job.rank.failed', {
          rank, incarnation: inc, code, signal, reason, stderrTail: normal ? undefined : String(f.body.stderrTail).slice(-2000), detectedBy: 'agent',
        });
        this.monitor.forget(`rank:${rank}`);
        r.pid = null;
        const settle = () => {
          // settled late (the secondary grace) after its group was restarted: the supervisor ignores
          // it, and so must the job chart (a stale failure would hold it in `recovering`)
          if (!normal && !r.isSettled && this.ranks.get(rank) === r) this.job.send({ type: 'job.rank.failed', rank, reason });
          r.fail({ normal, reason, code, signal, detail: { stderrTail: f.body.stderrTail } });
        };
        // the exit of a rank that just reported a communication error waits out the same grace
        const wait = r.secondaryAt === null ? 0 : SECONDARY_FAILURE_GRACE_MS - (this.clock.now() - r.secondaryAt);
        if (!normal && wait > 0) this.clock.setTimeout(settle, wait);
        else settle();
        break;
      }
      default:
        break;
    }
  }

  private onRankFrame(f: Frame, from: PeerId): void {
    const rank = f.sender;
    const r = this.ranks.get(rank);
    // frames from an older incarnation of the rank are stale: ignore them
    if (!r || f.incarnation !== r.incarnation) return;
    switch (f.type) {
      case 'peer.hello':
        this.link.send(from, 'peer.welcome', { jobId: this.keys.jobId, world: this.world, config: this.o.config, attempt: r.incarnation });
        this.events.emit('rank.joined', { rank, incarnation: r.incarnation, pid: f.body.pid });
        break;
      case 'peer.heartbeat':
        this.monitor.beat(from, f.body.step as number, f.body.busy as boolean);
        break;
      case 'kv.set':
        this.kv.set(f.body.key as string, f.body.value as Uint8Array);
        break;
      case 'kv.get':
      case 'kv.wait': {
        const keys = f.type === 'kv.get' ? [f.body.key as string] : (f.body.keys as string[]);
        const timeout = f.type === 'kv.wait' ? (f.body.timeoutMs as number) : this.cs.rendezvousTimeoutMs;
        this.kv.wait(keys, timeout).then(
          (values) => this.link.send(from, 'kv.reply', { id: f.body.id, values, value: values[0] }),
          (e: Error) => this.link.send(from, 'kv.reply', { id: f.body.id, error: e.message }),
        );
        break;
      }
      case 'rank.ready':
        this.ready.add(rank);
        if (this.ready.size === this.world) this.job.send({ type: 'job.ranks.ready' });
        break;
      case 'rank.step.done':
        this.onStepReport(rank, f.body);
        break;
      case 'rank.policy.transition':
        this.events.emit('rank.policy.transition', { rank, ...f.body });
        break;
      case 'rank.checkpoint.written':
        this.events.emit('checkpoint.committed', { rank, ...f.body });
        break;
      case 'rank.done':
        // a finished rank stops heartbeating while it exits: that is not a failure
        this.monitor.forget(from);
        this.finalHashes[rank] = f.body.finalHash as string | undefined;
        this.events.emit('rank.done', { rank, step: f.body.step, finalHash: f.body.finalHash });
        break;
      case 'rank.failed': {
        this.events.emit('job.rank.failed', { rank, incarnation: r.incarnation, reason: String(f.body.reason).slice(0, 4000), code: f.body.code, detectedBy: 'rank' });
        const reason = String(f.body.reason).split('\n')[0]!;
        const settle = () => {
          if (!r.isSettled && this.ranks.get(rank) === r) this.job.send({ type: 'job.rank.failed', rank, reason });
          r.fail({ normal: false, reason, detail: { code: f.body.code } });
        };
        // A communication error is usually the echo of a peer's failure: give the root cause (the
        // peer's exit or its own report) a moment to arrive first, so reports name the first failure.
        if (String(f.body.code ?? '').startsWith('ERR_COMM')) {
          r.secondaryAt = this.clock.now();
          this.clock.setTimeout(settle, SECONDARY_FAILURE_GRACE_MS);
        } else settle();
        break;
      }
      default:
        break;
    }
  }

  /** Every replica reports each step; their plan digests must agree. rank 0's figures go to metrics.jsonl. */
  private onStepReport(rank: number, body: Frame['body']): void {
    if (this.jobState === 'starting') this.job.send({ type: 'job.ranks.ready' });
    const step = body.step as number;
    let m = this.stepReports.get(step);
    if (!m) this.stepReports.set(step, (m = new Map()));
    m.set(rank, body);
    if (m.size < this.world) return;
    this.stepReports.delete(step);
    const digests = new Map<string, number[]>();
    for (const [r, b] of m) digests.set(b.planDigest as string, [...(digests.get(b.planDigest as string) ?? []), r]);
    if (digests.size > 1 && !this.divergence) {
      const groups = [...digests.entries()]
        .map(([d, rs]) => [d, [...rs].sort((a, b) => a - b)] as const)
        .sort((a, b) => a[1][0]! - b[1][0]!)
        .map(([d, rs]) => `ranks ${rs.join(',')}: ${d}`)
        .join('; ');
      this.divergence = `replicas disagree on the gradient policy at step ${step} (${groups})`;
      this.fail(this.divergence, 'diverged');
      return;
    }
    this.lastStep = Math.max(this.lastStep, step);
    const r0 = m.get(0)!;
    const row = {
      step,
      loss: r0.loss,
      tokens: [...m.values()].reduce((a, b) => a + (b.tokens as number), 0),
      ...(r0.stats as Record<string, unknown> | undefined),
      policy_state: r0.policyState,
      step_ms: r0.stepMs,
      restarts: this.supervisor?.restartCount ?? 0,
    };
    // appends are chained so rows land in step order even when the disk is slow
    const line = JSON.stringify(row) + '\n';
    this.metricsChain = this.metricsChain.then(() =>
      appendFile(join(this.o.outputDir, 'metrics.jsonl'), line).catch((e: Error) =>
        this.o.logger.error('cannot write metrics.jsonl', { error: e.message }),
      ),
    );
    this.events.emit('job.step', { step, loss: r0.loss, policy_state: r0.policyState });
    try {
      this.o.onStep?.(row);
    } catch (e) {
      this.o.logger.warn('step listener failed', { error: (e as Error).message });
    }
  }

  /** Stops everything this job started; safe to call twice. */
  private async shutdown(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.supervisor?.close('job ended');
    for (const a of this.agents.values()) this.link?.send(a.peer, 'job.command', { command: 'shutdown' });
    await Promise.all(
      [...this.agents.values()].map(async (a) => {
        if (!a.handle) return;
        let t: NodeJS.Timeout | undefined;
        const gone = await Promise.race([a.handle.exited.then(() => true), new Promise<boolean>((r) => (t = setTimeout(() => r(false), 5000)))]);
        clearTimeout(t);
        if (!gone) await a.handle.stop('job ended');
      }),
    );
    this.hbTimer?.cancel();
    this.monitor?.stop();
    this.kv.clear();
    await this.events.flush();
    await this.metricsChain;
    if (this.link !== this.router) await this.link?.close();
    await this.router?.close();
    this.job.stop();
    if (this.keyDir) await rm(this.keyDir, { recursive: true, force: true });
    if (this.createdKeyFile) await rm(this.createdKeyFile, { force: true });
  }

  /** Sends a signal to a rank's process through its node agent (fault injection); false if unknown. */
  signalRank(rank: number, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): boolean {
    const r = this.ranks.get(rank);
    if (!r || !this.link) return false;
    this.link.send(`agent:${r.slot.hostIndex}`, 'agent.signal', { rank, signal });
    return true;
  }

  /** Interrupt (Ctrl-C): fail the job; run() then stops every process. */
  interrupt(): void {
    this.fail('interrupted', 'interrupted');
  }
}
