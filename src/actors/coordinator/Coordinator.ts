/**
 * The coordinator (inside `ulysses-actors up`): binds the control plane (ROUTER, CURVE), starts a
 * node agent per host, serves the rendezvous store, supervises the ranks one_for_all with restart
 * intensity, detects failures (exit reports, missed heartbeats, hangs, replica divergence),
 * aggregates per-step reports into metrics.jsonl and logs every event to events.ndjson. Failures a
 * restart cannot cure (failureClass.ts) fail the job at once; a silent node agent gets a grace
 * (AgentSilence.ts). On start it sweeps what dead jobs left on this host (sweepStale.ts). It runs
 * the job statechart (src/statecharts/job.ts) and never leaves a process of the job running when
 * it returns.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createActor } from 'xstate';
import { wireJobOf } from '../../config/JobSpec.js';
import { jobMachine } from '../../statecharts/job.js';
import { configHash } from '../../train/outputDirState.js';
import type { Frame } from '../../transport/FrameCodec.js';
import type { BodyOf } from '../../transport/messages.js';
import { HeartbeatMonitor } from '../../transport/HeartbeatMonitor.js';
import type { PeerId, Transport } from '../../transport/Transport.js';
import { RouterEndpoint } from '../../transport/ZmqEndpoints.js';
import { systemClock, type Clock } from '../../util/Clock.js';
import { EventLog } from '../events/EventLog.js';
import { jobEvents } from '../events/jobEvents.js';
import { KvStore } from '../KvStore.js';
import { sweepDeadOwners } from '../sweepStale.js';
import { Supervisor, type ChildHandle, type ChildSpec } from '../Supervisor.js';
import { handleAgentFrame } from './agentFrames.js';
import { AgentSilence } from './AgentSilence.js';
import type { AgentEntry, CoordinatorCore, JobFailureKind } from './CoordinatorCore.js';
import type { CoordinatorOptions, JobResult } from './CoordinatorOptions.js';
import { JobKeyFile } from './JobKeyFile.js';
import { rankEnvironment } from './rankEnvironment.js';
import { handleRankFrame } from './rankFrames.js';
import { stopRank } from './stopRank.js';
import { RankExits, RemoteRank, rankSlotsOf, type RankSlot } from './RemoteRank.js';
import { StepAggregator } from './StepAggregator.js';

export class Coordinator {
  private readonly clock: Clock;
  private readonly kv: KvStore;
  readonly events: EventLog;
  private router: RouterEndpoint | null = null;
  /** what the coordinator sends and receives through: the router, or a wrapper around it */
  private link: Transport | null = null;
  private keyFile: JobKeyFile | null = null;
  private monitor: HeartbeatMonitor | null = null;
  private core: CoordinatorCore | null = null;
  private readonly chart = createActor(jobMachine).start();
  private readonly agents = new Map<number, AgentEntry>();
  private readonly ranks = new Map<number, RemoteRank>();
  private readonly exits = new RankExits();
  private readonly ready = new Set<number>();
  private readonly finalHashes: (string | undefined)[] = [];
  private readonly slots: RankSlot[];
  private readonly steps: StepAggregator;
  private supervisor: Supervisor | null = null;
  private hbTimer: { cancel(): void } | null = null;
  private jobFailed: ((reason: string) => void) | null = null;
  private failedEarly: string | null = null;
  private failureKind: JobFailureKind | undefined;
  private finalReport: BodyOf<'rank.done'> | undefined;
  /** node agents that missed their heartbeats: the job fails if one stays silent past the grace */
  private agentJoined: () => void = () => {};
  private readonly deadAgents = new Set<number>();
  private readonly agentSilence: AgentSilence;
  private closing = false;
  private joinUrl = '';
  private port = 0;
  readonly world: number;

  constructor(private readonly o: CoordinatorOptions) {
    this.clock = o.clock ?? systemClock;
    this.kv = new KvStore(this.clock);
    const t0 = this.clock.now();
    const out = o.job.config.output_dir;
    this.events = new EventLog(join(out, 'events.ndjson'), () => this.clock.now() - t0, o.logger);
    this.slots = rankSlotsOf(o.hosts);
    this.world = this.slots.length;
    this.steps = new StepAggregator({ world: this.world, metricsPath: join(out, 'metrics.jsonl'), logger: o.logger, restarts: () => this.supervisor?.restartCount ?? 0 });
    this.chart.subscribe((s) => this.events.emit(jobEvents.state({ state: String(s.value), attempt: s.context.attempt })));
    const rewatch = (i: number) => {
      const a = this.agents.get(i);
      if (a) this.monitor?.watch(a.peer, this.cluster.heartbeatIntervalMs * 2);
    };
    const hostName = (i: number) => o.hosts[i]?.host ?? String(i);
    this.agentSilence = new AgentSilence({ clock: this.clock, logger: o.logger, events: this.events, graceMs: this.cluster.coordinatorGraceMs, hostName, closing: () => this.closing, rewatch, fail: (reason) => this.fail(reason) });
  }

  private get cluster() {
    return this.o.job.cluster;
  }

  /** heartbeat checks skipped because the coordinator itself was stalled (diagnostics) */
  get monitorStalls(): number {
    return this.monitor?.stalls ?? 0;
  }

  get jobState(): string {
    return String(this.chart.getSnapshot().value);
  }

  /** The endpoint agents and ranks dial (set once run() has bound it). */
  get url(): string {
    return this.joinUrl;
  }

  /** Runs the job to the end. */
  async run(): Promise<JobResult> {
    await mkdir(this.o.job.config.output_dir, { recursive: true });
    const swept = sweepDeadOwners();
    if (swept.length) this.o.logger.info('removed what dead jobs left on this host', { removed: swept });
    const keyFile = (this.keyFile = await JobKeyFile.open(this.o.jobKeyFile));
    // ZMTP heartbeats only catch dead TCP connections; liveness at the job's rate is the
    // application heartbeat's job, so they need not double the traffic at 10 Hz. Their timeout
    // outlasts the grace: a connection dropped by it would lose the frames a pause queued.
    const router = (this.router = new RouterEndpoint({
      keys: keyFile.keys,
      logger: this.o.logger.child('router'),
      zmtpHeartbeatMs: Math.max(1000, this.cluster.heartbeatIntervalMs),
      zmtpTimeoutMs: this.cluster.coordinatorGraceMs + 2 * Math.max(1000, this.cluster.heartbeatIntervalMs),
    }));
    const link = (this.link = this.o.wrapTransport ? this.o.wrapTransport(router) : router);
    link.onFrame((f, from) => this.onFrame(f, from));
    const bound = await router.bind(this.cluster.bindHost, this.cluster.port);
    this.port = Number(/:(\d+)$/.exec(bound)?.[1]);
    // a wildcard bind is dialled through the advertised address
    const url = (this.joinUrl = `tcp://${this.cluster.advertiseHost}:${this.port}`);
    this.events.emit(jobEvents.started({ world: this.world, hosts: this.o.hosts, url, bound, jobId: keyFile.keys.jobId, pid: process.pid, configHash: configHash(this.o.job.config) }));
    this.o.logger.info('control plane listening', { url, world: this.world });

    const monitor = (this.monitor = new HeartbeatMonitor({
      clock: this.clock,
      intervalMs: this.cluster.heartbeatIntervalMs,
      missLimit: this.cluster.missLimit,
      stepTimeoutMs: this.cluster.stepTimeoutMs,
      onDead: (peer, ms) => this.onPeerLost(peer, `no heartbeat for ${Math.round(ms)} ms`),
      onHung: (peer, step, ms) => this.onPeerLost(peer, `hung: step ${step} did not advance for ${Math.round(ms)} ms`),
    }));
    this.core = {
      job: this.o.job,
      hosts: this.o.hosts,
      world: this.world,
      clock: this.clock,
      events: this.events,
      link,
      monitor,
      kv: this.kv,
      agents: this.agents,
      ranks: this.ranks,
      exits: this.exits,
      ready: this.ready,
      finalHashes: this.finalHashes,
      deadAgents: this.deadAgents,
      chart: this.chart,
      welcome: (attempt) => ({ jobId: keyFile.keys.jobId, world: this.world, job: wireJobOf(this.o.job), ...(attempt !== undefined ? { attempt } : {}) }),
      agentJoined: () => this.agentJoined(),
      stepReport: (rank, body) => this.onStepReport(rank, body),
      evalReport: (body) => this.onEvalReport(body),
      rankDone: (rank, body) => {
        if (rank === 0) this.finalReport = body;
      },
      agentHeard: (i) => this.agentSilence.heard(i),
      fail: (reason, kind) => this.fail(reason, kind),
    };
    // the coordinator heartbeats its peers too, so they can tell when it is gone
    this.hbTimer = this.clock.setInterval(() => this.heartbeatPeers(), this.cluster.heartbeatIntervalMs);

    try {
      return await this.runPhases(keyFile.path, url);
    } finally {
      await this.shutdown();
    }
  }

  private async runPhases(keyFile: string, url: string): Promise<JobResult> {
    const failed = new Promise<string>((r) => (this.jobFailed = r));
    // an interrupt that came before the job got this far still ends it
    if (this.failedEarly !== null) return this.result(false, this.failedEarly);
    // 1. agents
    const agentsJoined = this.startAgents(keyFile, url);
    let joinTimer: { cancel(): void } | undefined;
    const joined = await Promise.race([
      agentsJoined.then(() => true),
      new Promise<boolean>((r) => (joinTimer = this.clock.setTimeout(() => r(false), this.cluster.rendezvousTimeoutMs))),
      failed.then(() => false),
    ]);
    // a pending timer would keep `up` alive long after the job ended
    joinTimer?.cancel();
    if (!joined) {
      const missing = [...this.agents.entries()].filter(([, a]) => !a.joined).map(([i]) => this.o.hosts[i]!.host);
      const reason = `node agents did not join within ${this.cluster.rendezvousTimeoutMs} ms: ${missing.join(', ') || 'unknown'}`;
      this.chart.send({ type: 'job.gave_up', reason });
      return this.result(false, reason);
    }
    this.chart.send({ type: 'job.agents.joined' });

    // 2. ranks under one_for_all supervision
    const specs: ChildSpec[] = this.slots.map((slot) => ({
      id: `rank${slot.rank}`,
      restart: 'transient',
      start: async (attempt) => this.startRank(slot, attempt),
    }));
    this.supervisor = new Supervisor(specs, {
      strategy: 'one_for_all',
      maxRestarts: this.cluster.maxRestarts,
      restartWindowMs: this.cluster.restartWindowMs,
      clock: this.clock,
      logger: this.o.logger.child('supervisor'),
      onRestart: (cause, restarted, attempt) => {
        this.events.emit(jobEvents.restarted({ attempt, cause: cause.child, reason: cause.exit.reason, restarted }));
        this.chart.send({ type: 'job.restarted', attempt });
      },
    });
    await this.supervisor.start();
    const outcome = await Promise.race([this.supervisor.done.then((d) => ({ kind: 'done' as const, d })), failed.then((reason) => ({ kind: 'failed' as const, reason }))]);
    if (outcome.kind === 'failed') return this.result(false, outcome.reason);
    if (!outcome.d.ok) {
      const rep = outcome.d.report!;
      const f = rep.firstFailure;
      const reason = `restart intensity exceeded: failed again after ${rep.restartsInWindow} restart(s) within ${rep.restartWindowMs / 1000} s (cluster.max_restarts ${rep.maxRestarts}, cluster.restart_window_s ${rep.restartWindowMs / 1000}); first failure: ${f.child}: ${f.exit.reason}`;
      this.chart.send({ type: 'job.gave_up', reason });
      return { ...this.result(false, reason), giveUp: outcome.d.report };
    }
    this.chart.send({ type: 'job.completed' });
    return this.result(true, null);
  }

  private result(ok: boolean, reason: string | null): JobResult {
    const fin = this.finalReport;
    return {
      ok,
      state: this.jobState,
      reason,
      ...(!ok && this.failureKind ? { failure: this.failureKind } : {}),
      restarts: this.supervisor?.restartCount ?? 0,
      finalHashes: this.finalHashes,
      lastStep: Math.max(this.steps.lastStep, ok ? (fin?.step ?? 0) : 0),
      ...(fin?.trained !== undefined ? { trained: fin.trained } : {}),
      ...(fin?.note !== undefined ? { note: fin.note } : {}),
    };
  }

  /** Fails the whole job now (no restart): divergence, interrupts, failures a restart cannot cure. The first reason wins. */
  fail(reason: string, kind: JobFailureKind = 'error'): void {
    if (this.failedEarly !== null) return;
    if (kind === 'diverged') this.chart.send({ type: 'job.diverged', reason });
    else if (kind === 'interrupted') this.chart.send({ type: 'job.interrupted' });
    else this.chart.send({ type: 'job.error', reason });
    this.events.emit(jobEvents.failed({ reason, kind }));
    this.failedEarly = reason;
    this.failureKind = kind;
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
        for (const r of this.ranks.values()) if (r.slot.hostIndex === i) this.exits.confirm(r.slot.rank, r.incarnation);
        if (this.jobState !== 'succeeded' && this.jobState !== 'failed' && !this.closing) {
          this.fail(`node agent of ${h.host} exited: ${e.reason}`);
        }
      });
    }
    return joinedAll;
  }

  private startRank(slot: RankSlot, attempt: number): Promise<ChildHandle> {
    if (attempt > 0 && slot.rank === 0) {
      this.kv.clear(`a${attempt - 1}/`);
      this.steps.clear();
      this.ready.clear();
    }
    const r = new RemoteRank(slot, attempt, (rr, reason) => stopRank(this.core!, rr, reason));
    this.ranks.set(slot.rank, r);
    const env = rankEnvironment(slot, { world: this.world, attempt, host: this.o.hosts[slot.hostIndex]!.host, masterHost: this.cluster.advertiseHost, masterPort: this.port, workload: this.o.workload ?? 'train', extra: this.o.rankEnv });
    this.link!.send(r.agentPeer, 'agent.spawn', { rank: slot.rank, incarnation: attempt, env, args: [] });
    this.events.emit(jobEvents.rankSpawn({ rank: slot.rank, incarnation: attempt, host: this.o.hosts[slot.hostIndex]!.host }));
    // a new process gets time to start up before missed heartbeats count
    this.monitor!.watch(r.peer, this.cluster.startupGraceMs);
    return Promise.resolve(r);
  }

  private heartbeatPeers(): void {
    // the step tells the ranks which of their step reports this attempt has aggregated
    const beat = { step: this.steps.attemptStep, phase: this.jobState, busy: false };
    for (const a of this.agents.values()) if (a.joined) this.link!.send(a.peer, 'peer.heartbeat', beat);
    for (const r of this.ranks.values()) if (!r.isSettled) this.link!.send(r.peer, 'peer.heartbeat', beat);
  }

  private onPeerLost(peer: PeerId, why: string): void {
    const [role, idx] = peer.split(':');
    const i = Number(idx);
    if (role === 'rank') {
      const r = this.ranks.get(i);
      if (!r || r.isSettled) return;
      this.events.emit(jobEvents.rankFailed({ rank: i, incarnation: r.incarnation, reason: why, detectedBy: 'heartbeat' }));
      // the process may still be alive (frozen, hung, cut off): make sure it cannot run beside its successor
      this.link!.send(r.agentPeer, 'agent.signal', { rank: i, signal: 'SIGKILL' });
      this.chart.send({ type: 'job.rank.failed', rank: i, reason: why });
      r.fail({ normal: false, reason: why });
    } else if (role === 'agent') {
      this.agentSilence.silent(i, why);
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
    if (role === 'agent') handleAgentFrame(this.core!, f, from);
    else if (role === 'rank') handleRankFrame(this.core!, f, from);
  }

  /** Every replica reports each step; their plan digests must agree. rank 0's figures go to metrics.jsonl. */
  private onStepReport(rank: number, body: BodyOf<'rank.step.done'>): void {
    if (this.jobState === 'starting') this.chart.send({ type: 'job.ranks.ready' });
    const outcome = this.steps.add(rank, body);
    if (outcome.kind === 'diverged') this.fail(outcome.reason, 'diverged');
    if (outcome.kind !== 'complete') return;
    const { row } = outcome;
    this.events.emit(jobEvents.step({ step: row.step, loss: row.loss, policy_state: row.policy_state }));
    try {
      this.o.onStep?.(row);
    } catch (e) {
      this.o.logger.warn('step listener failed', { error: (e as Error).message });
    }
  }

  /** rank 0's evaluation: a metrics.jsonl row after its step's row, an event, the listener. */
  private onEvalReport(body: BodyOf<'rank.eval.done'>): void {
    const row = this.steps.addEval(body);
    this.events.emit(jobEvents.eval({ step: body.step, metrics: body.metrics }));
    try {
      this.o.onEval?.(row);
    } catch (e) {
      this.o.logger.warn('eval listener failed', { error: (e as Error).message });
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
    this.agentSilence.cancelAll();
    this.monitor?.stop();
    this.kv.clear();
    // every rank is gone: a frame a wrapper still holds (a reordered last step report) is handled
    // before the last rows are written
    if (this.link !== this.router) await this.link?.drain?.(1000);
    await this.events.flush();
    await this.steps.flush();
    if (this.link !== this.router) await this.link?.close();
    await this.router?.close();
    this.chart.stop();
    await this.keyFile?.close();
  }

  /** Sends a signal to a rank's process through its node agent (fault injection); false if unknown. */
  signalRank(rank: number, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): boolean {
    const r = this.ranks.get(rank);
    if (!r || !this.link) return false;
    this.link.send(r.agentPeer, 'agent.signal', { rank, signal });
    return true;
  }

  /** Interrupt (Ctrl-C): fail the job; run() then stops every process. */
  interrupt(): void {
    this.fail('interrupted', 'interrupted');
  }
}
