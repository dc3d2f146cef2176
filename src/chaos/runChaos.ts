/**
 * The chaos harness: runs a job under a fault plan (coordinator in this process, node agents and
 * ranks as local child processes), injects the plan's faults, runs the fault-free reference when
 * the plan expects recovery, and checks the guarantees:
 *   recovered   the job ended by itself with success (a restart storm: it gave up within the
 *               restart intensity, naming the first failure);
 *   same-weights every rank's final hash equals the fault-free run's;
 *   checkpoints a corrupted or torn checkpoint was skipped for the previous valid one;
 *   one-restart each failure restarted the group once (not once more per echo of it);
 *   no-leftovers no process of the job (agents, ranks: pids from events) is alive afterwards.
 * Per fault it measures time to detect (injected -> job.rank.failed), time to recover
 * (detected -> first step after the restart) and the steps redone.
 * Plans that `expect: absorb` (gradient faults under the train workload) are handled by the
 * gradient policy inside the run, so the fault-free weights are not the target; instead:
 *   completed    the job ended with success (a policy rollback and restart is allowed);
 *   policy       at the step a NaN/Inf fault fired the update was skipped (nonfinite > 0, lr 0 in
 *                metrics.jsonl); at a vanishing (exploding) fault's step the policy was in
 *                vanishing-intervention (explode-clip);
 *   finite       every weight of the final checkpoint is finite;
 *   replicas     every rank ends with the same final hash.
 * Must never leave a process behind: leftovers are killed by pid (and the guarantee fails).
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dump } from 'js-yaml';
import { join, resolve } from 'node:path';
import { Coordinator, clusterSettings, type JobResult } from '../actors/Coordinator.js';
import type { JobEvent } from '../actors/EventLog.js';
import { LocalLauncher } from '../actors/launchers/LocalLauncher.js';
import { cliEntry as defaultCliEntry } from '../cli/entryPath.js';
import type { Transport } from '../transport/Transport.js';
import { createLogger, type Logger } from '../util/Logger.js';
import { FAILING, RANK_SIDE, keyedUniform, type Fault, type FaultPlan } from './FaultPlan.js';
import { FaultProxy, type NetFaultKind } from './FaultProxy.js';
import { checkpointSteps, corruptNewestCheckpoint, type Corruption } from './injectFiles.js';
import { CHAOS_ENV, FIRED_DIR, firedMarkerPath, type FiredMarker, type RankChaosSpec } from './RankChaos.js';

export interface ChaosRunOptions {
  plan: FaultPlan;
  /** the harness owns `<outputDir>/fault` and `<outputDir>/reference` (emptied first) */
  outputDir: string;
  /** overrides the plan's workload */
  workload?: string;
  /** job config overrides on top of the plan's `job` */
  jobOverrides?: Record<string, unknown>;
  logger?: Logger;
  cliEntry?: string;
  /** fault-free final hashes by job config, shared between runs (tests) */
  referenceCache?: Map<string, (string | undefined)[]>;
  /** the environment the agents and ranks get (default: this one without NODE_OPTIONS) */
  env?: NodeJS.ProcessEnv;
}

export interface FaultOutcome {
  index: number;
  kind: string;
  target: string;
  fired: boolean;
  /** the step before which it fired */
  step: number | null;
  detectMs: number | null;
  recoverMs: number | null;
  stepsRedone: number | null;
  resumedFrom: number | null;
  detectedBy: string | null;
  /**
   * Where the time to recover went (ms): stopping the old group (detection -> the new ranks
   * spawned), starting the new processes (-> every rank joined the control plane), and the
   * rank's own startup up to the end of the first step (rendezvous, model, data, checkpoint
   * load, one step). null when there was no restart to time.
   */
  phases: { stopMs: number; joinMs: number; initMs: number } | null;
  note: string;
}

export interface Guarantee {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ChaosReport {
  plan: string;
  ok: boolean;
  workload: string;
  world: number;
  result: JobResult;
  reference: (string | undefined)[] | null;
  faults: FaultOutcome[];
  guarantees: Guarantee[];
  leftovers: number[];
  corruptions: Corruption[];
  /** the job's checkpoint interval: a restart redoes at most this many steps per lost checkpoint */
  saveSteps: number;
  wallMs: number;
  outputDir: string;
}

/** Defaults that keep a chaos job short; the plan's `job` and the command line override them. */
export function defaultChaosJob(workload: string): Record<string, unknown> {
  const cluster = { heartbeat_interval_s: 0.25, heartbeat_miss_limit: 3, max_restarts: 3, restart_window_s: 120, shutdown_grace_s: 1, rendezvous_timeout_s: 60, step_timeout_s: 60, startup_grace_s: 20 };
  // a barrier every step keeps the synthetic ranks in lockstep, like the collectives of a real step
  if (workload === 'synthetic') return { max_steps: 16, save_steps: 4, synthetic: { step_ms: 40, barrier_steps: 1 }, cluster };
  // train: the tiny model on the built-in recall task, short sequences, checkpoints every 2 steps
  return {
    model_name_or_path: 'tiny', stage: 'sft', finetuning_type: 'full', dataset: 'builtin:recall', cutoff_len: 130, max_samples: 32,
    logging_steps: 1, save_steps: 2, max_steps: 8, learning_rate: 5.0e-3, lr_scheduler_type: 'cosine', warmup_steps: 2, sequence_parallel_size: 2,
    cluster: { ...cluster, heartbeat_interval_s: 0.5, heartbeat_miss_limit: 4, collective_timeout_s: 60, step_timeout_s: 120 },
  };
}

/**
 * The train workload needs the fully resolved job (every key with its default): the plan's keys
 * go through the config layer like a job file; the cluster settings are applied on top as given.
 */
async function resolveTrainJob(job: Record<string, unknown>, world: number, name: string): Promise<Record<string, unknown>> {
  const { loadJobConfig } = await import('../config/loadJobConfig.js');
  // synthetic-only knobs mean nothing to the training loop (a plan may be run with --workload train)
  const { cluster, synthetic: _synthetic, ...rest } = job;
  const resolved = loadJobConfig({ configPath: `${name}.yaml`, configText: dump(rest), env: {}, worldSize: world });
  return deepMerge(resolved.config as unknown as Record<string, unknown>, { cluster: (cluster ?? {}) as Record<string, unknown> });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch (e) {
    // EPERM: it exists but is not ours to signal; anything else (ESRCH, no /proc entry): gone
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function leftoverPids(pids: number[], waitMs: number): Promise<number[]> {
  const t0 = Date.now();
  while (Date.now() - t0 < waitMs) {
    if (!pids.some(alive)) return [];
    await new Promise((r) => setTimeout(r, 50));
  }
  return pids.filter(alive);
}

const netKind: Partial<Record<string, NetFaultKind>> = { net_drop: 'drop', net_delay: 'delay', net_duplicate: 'duplicate', net_reorder: 'reorder', partition: 'partition' };

interface RunOnce {
  result: JobResult;
  events: JobEvent[];
  pids: number[];
  leftovers: number[];
  injected: Map<number, { wallMs: number; step: number; ranks: number[] }>;
  corruptions: Corruption[];
  wallMs: number;
  /** what the coordinator-side fault proxy did (null: none) */
  proxyFaults: FaultProxy['faults'] | null;
  outputDir: string;
}

async function runOnce(o: {
  plan: FaultPlan;
  faults: Fault[];
  config: Record<string, unknown>;
  hosts: { host: string; slots: number }[];
  outputDir: string;
  workload: string;
  logger: Logger;
  cliEntry: string;
  env: NodeJS.ProcessEnv;
}): Promise<RunOnce> {
  rmSync(o.outputDir, { recursive: true, force: true });
  const t0 = Date.now();
  const world = o.hosts.reduce((a, h) => a + h.slots, 0);
  const hostOf: number[] = [];
  o.hosts.forEach((h, i) => {
    for (let s = 0; s < h.slots; s++) hostOf.push(i);
  });
  const ranksOf = (f: Fault) => (f.target.rank !== undefined ? [f.target.rank] : hostOf.flatMap((h, r) => (h === f.target.host ? [r] : [])));
  const rankSide: RankChaosSpec = { seed: o.plan.seed, faults: o.faults.filter((f) => RANK_SIDE.has(f.kind) && !(netKind[f.kind] && f.side === 'coordinator')) };
  const coordNet = o.faults.filter((f) => netKind[f.kind] && f.side === 'coordinator');
  let proxy: FaultProxy | null = null;
  const launcher = new LocalLauncher(o.cliEntry, o.logger, o.env);
  const coord = new Coordinator({
    config: o.config,
    hosts: o.hosts,
    outputDir: o.outputDir,
    launcher,
    logger: o.logger,
    workload: o.workload,
    rankEnv: rankSide.faults.length ? { [CHAOS_ENV]: JSON.stringify(rankSide) } : undefined,
    wrapTransport: coordNet.length
      ? (t: Transport) => {
          proxy = new FaultProxy(t, { seed: o.plan.seed });
          for (const f of coordNet) {
            const untriggered = f.trigger.atStep === undefined && f.trigger.atTimeS === undefined && f.trigger.probability === undefined;
            if (untriggered) {
              proxy.addRule({ kind: netKind[f.kind]!, p: f.p, delayMs: f.delayMs, types: f.types, peers: ranksOf(f).map((r) => `rank:${r}`), fromMs: 0, toMs: f.durationS > 0 && f.kind !== 'partition' ? f.durationS * 1000 : Infinity });
            }
          }
          return proxy;
        }
      : undefined,
  });

  // harness-side injectors
  const injected = new Map<number, { wallMs: number; step: number; ranks: number[] }>();
  const corruptions: Corruption[] = [];
  const harness = o.faults.filter((f) => !RANK_SIDE.has(f.kind) || (netKind[f.kind] && f.side === 'coordinator'));
  const timers: NodeJS.Timeout[] = [];
  let lastStep = 0;
  const inject = (f: Fault, step: number) => {
    if (injected.has(f.index)) return;
    const ranks = ranksOf(f);
    injected.set(f.index, { wallMs: Date.now(), step, ranks });
    coord.events.emit('chaos.injected', { fault: f.index, kind: f.kind, ranks, step });
    switch (f.kind) {
      case 'crash':
      case 'checkpoint_corrupt':
        for (const r of ranks) coord.signalRank(r, 'SIGKILL');
        break;
      case 'freeze':
        for (const r of ranks) coord.signalRank(r, 'SIGSTOP');
        timers.push(
          setTimeout(() => {
            for (const r of ranks) coord.signalRank(r, 'SIGCONT');
            coord.events.emit('chaos.resumed', { fault: f.index, kind: f.kind, ranks });
          }, f.durationS * 1000),
        );
        break;
      default:
        if (netKind[f.kind] && proxy) {
          const p = proxy as FaultProxy;
          const now = p.elapsedMs;
          const to = f.kind === 'partition' || f.durationS > 0 ? now + f.durationS * 1000 : Infinity;
          p.addRule({ kind: netKind[f.kind]!, p: f.kind === 'partition' ? 1 : f.p, delayMs: f.delayMs, types: f.types, peers: ranks.map((r) => `rank:${r}`), fromMs: now, toMs: to });
        }
        break;
    }
  };
  const triggered = (f: Fault) => f.trigger.atStep !== undefined || f.trigger.atTimeS !== undefined || f.trigger.probability !== undefined;
  const unsubscribe = coord.events.subscribe((e) => {
    if (e.type === 'job.started') {
      for (const f of harness) {
        if (f.trigger.atTimeS !== undefined) timers.push(setTimeout(() => inject(f, lastStep + 1), f.trigger.atTimeS * 1000));
      }
    } else if (e.type === 'job.step') {
      const step = e.step as number;
      lastStep = step;
      for (const f of harness) {
        if (injected.has(f.index) || !triggered(f)) continue;
        // "at step N": once the job has completed step N-1 (step 1: once step 1 is done)
        if (f.trigger.atStep !== undefined && step >= Math.max(1, f.trigger.atStep - 1)) inject(f, step + 1);
        else if (f.trigger.probability !== undefined && keyedUniform(o.plan.seed, f.index, ranksOf(f)[0] ?? 0, step + 1) < f.trigger.probability) inject(f, step + 1);
      }
    } else if (e.type === 'rank.spawn' && (e.incarnation as number) > 0 && e.rank === 0) {
      // between attempts: every rank of the old attempt is stopped, the new ones are not up yet
      for (const f of o.faults) {
        if (f.kind !== 'checkpoint_corrupt' || corruptions.some((c) => (c as Corruption & { fault?: number }).fault === f.index)) continue;
        const c = corruptNewestCheckpoint(o.outputDir, f.mode, o.plan.seed + f.index);
        if (c) {
          corruptions.push(Object.assign(c, { fault: f.index, attempt: e.incarnation as number }));
          coord.events.emit('chaos.checkpoint.corrupted', { fault: f.index, step: c.step, file: c.file, mode: c.mode, attempt: e.incarnation });
        }
      }
    }
  });

  // faults the ranks inject themselves show up in events.ndjson too (for the visualizer)
  const seen = new Set<string>();
  const firedDir = join(o.outputDir, FIRED_DIR);
  const watchFired = setInterval(() => {
    let names: string[];
    try {
      names = readdirSync(firedDir);
    } catch {
      return;
    }
    for (const n of names) {
      if (seen.has(n) || !n.endsWith('.json')) continue;
      try {
        const m = JSON.parse(readFileSync(join(firedDir, n), 'utf8')) as FiredMarker;
        seen.add(n);
        coord.events.emit('chaos.injected', { fault: m.fault, kind: m.kind, ranks: [m.rank], step: m.step > 0 ? m.step : null, side: 'rank', firedAt: new Date(m.wallMs).toISOString() });
      } catch {
        /* being written: next tick */
      }
    }
  }, 100);

  let result: JobResult;
  try {
    result = await coord.run();
  } finally {
    clearInterval(watchFired);
    unsubscribe();
    for (const t of timers) clearTimeout(t);
  }
  const events = [...coord.events.recent];
  const pids = [...new Set([...launcher.pids, ...events.filter((e) => (e.type === 'agent.joined' || e.type === 'rank.joined') && typeof e.pid === 'number').map((e) => e.pid as number)])];
  const leftovers = await leftoverPids(pids, 3000);
  for (const p of leftovers) {
    try {
      process.kill(p, 'SIGCONT');
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
  // rank-side faults record when they fired
  for (const f of o.faults) {
    if (injected.has(f.index)) continue;
    for (const r of ranksOf(f)) {
      const p = firedMarkerPath(o.outputDir, f.index, r);
      if (!existsSync(p)) continue;
      const m = JSON.parse(readFileSync(p, 'utf8')) as FiredMarker;
      const prev = injected.get(f.index);
      if (!prev || m.wallMs < prev.wallMs) injected.set(f.index, { wallMs: m.wallMs, step: m.step, ranks: [r] });
    }
  }
  void world;
  return { result, events, pids, leftovers, injected, corruptions, wallMs: Date.now() - t0, proxyFaults: proxy ? { ...(proxy as FaultProxy).faults } : null, outputDir: o.outputDir };
}

const wall = (e: JobEvent) => Date.parse(e.time);

/** Runs the plan and checks every guarantee. */
export async function runChaos(o: ChaosRunOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const { plan } = o;
  const logger = o.logger ?? createLogger('silent');
  const workload = o.workload ?? plan.workload ?? 'synthetic';
  const hosts = plan.hosts ?? [{ host: 'localhost', slots: 2 }];
  const world = hosts.reduce((a, h) => a + h.slots, 0);
  const out = resolve(o.outputDir);
  const env = { ...(o.env ?? process.env) };
  delete env.NODE_OPTIONS;
  let base = deepMerge(deepMerge(defaultChaosJob(workload), plan.job), o.jobOverrides ?? {});
  if (workload === 'train') base = await resolveTrainJob(base, world, plan.name);
  // one math thread per rank: the ranks share this machine's cores
  if (workload === 'train') env.ULYSSES_THREADS ??= '1';
  // the ranks' own progress lines would drown the report: warnings and errors only, unless asked
  env.ULYSSES_LOG_LEVEL ??= logger.level === 'silent' ? 'warn' : logger.level;
  const faultDir = join(out, 'fault');
  const refDir = join(out, 'reference');
  const common = { plan, hosts, workload, logger, cliEntry: o.cliEntry ?? defaultCliEntry(), env };

  const run = await runOnce({ ...common, faults: plan.faults, config: { ...base, output_dir: faultDir }, outputDir: faultDir });
  let reference: (string | undefined)[] | null = null;
  if (plan.expect === 'recover') {
    // cluster settings (timeouts, heartbeats) never change the math: runs differing only there share a reference
    const key = JSON.stringify({ workload, hosts, base: { ...base, cluster: undefined } });
    reference = o.referenceCache?.get(key) ?? null;
    if (!reference) {
      const ref = await runOnce({ ...common, faults: [], config: { ...base, output_dir: refDir }, outputDir: refDir });
      if (ref.result.ok) {
        reference = ref.result.finalHashes;
        o.referenceCache?.set(key, reference);
      } else reference = [];
      run.leftovers.push(...ref.leftovers);
    }
  }

  const faults = plan.faults.map((f) => analyseFault(f, run, world, plan.expect === 'absorb'));
  const guarantees = checkGuarantees(plan, run, reference, faults, clusterSettings(base).maxRestarts, world);
  return {
    plan: plan.name,
    ok: guarantees.every((g) => g.ok),
    workload,
    world,
    result: run.result,
    reference,
    faults,
    guarantees,
    leftovers: run.leftovers,
    corruptions: run.corruptions,
    saveSteps: Number(base.save_steps),
    wallMs: Date.now() - t0,
    outputDir: out,
  };
}

function analyseFault(f: Fault, run: RunOnce, world: number, absorbed = false): FaultOutcome {
  const inj = run.injected.get(f.index);
  const target = f.kind === 'checkpoint_corrupt' && f.trigger.atStep === undefined ? 'newest ckpt' : f.target.rank !== undefined ? `rank ${f.target.rank}` : `host ${f.target.host}`;
  const base: FaultOutcome = { index: f.index, kind: f.kind, target, fired: !!inj, step: inj?.step ?? null, detectMs: null, recoverMs: null, stepsRedone: null, resumedFrom: null, detectedBy: null, phases: null, note: '' };
  const untriggered = f.trigger.atStep === undefined && f.trigger.atTimeS === undefined && f.trigger.probability === undefined;
  if (!inj && untriggered && f.kind.startsWith('net_')) {
    const pf = f.side === 'coordinator' ? run.proxyFaults : null;
    const counts = pf ? `: ${pf.dropped} dropped, ${pf.delayed} delayed, ${pf.duplicated} duplicated, ${pf.reordered} reordered` : '';
    return { ...base, fired: true, note: `whole run (${f.side} side${counts})` };
  }
  if (!inj) return { ...base, note: f.kind === 'checkpoint_corrupt' && run.corruptions.length ? 'corrupted between attempts' : 'did not fire' };
  if (!FAILING.has(f.kind)) return { ...base, note: 'no failure expected' };
  const ev = run.events;
  // checkpoint_corrupt fires when the attempt starts; its own kill (at_step) is the failure timed
  const failed = ev.find((e) => e.type === 'job.rank.failed' && wall(e) >= inj.wallMs - 5);
  if (!failed) return { ...base, note: absorbed ? 'absorbed by the gradient policy' : 'no failure was detected' };
  const detectMs = wall(failed) - inj.wallMs;
  const restart = ev.find((e) => e.type === 'job.restarted' && e.t >= failed.t);
  const before = ev.filter((e) => e.type === 'job.step' && e.t <= failed.t).map((e) => e.step as number);
  const lastBefore = before.length ? Math.max(...before) : 0;
  const firstAfter = restart ? ev.find((e) => e.type === 'job.step' && e.t > restart.t) : undefined;
  void world;
  if (restart && !firstAfter && run.result.ok) {
    // the restart resumed from the final checkpoint (the rest of the group had finished meanwhile):
    // nothing to redo; recovered when the new attempt's ranks were done
    const done = ev.find((e) => e.type === 'rank.done' && e.t > restart.t);
    if (done) return { ...base, detectMs, recoverMs: done.t - failed.t, stepsRedone: 0, resumedFrom: done.step as number, detectedBy: String(failed.detectedBy ?? ''), note: 'resumed at the end' };
  }
  if (!restart || !firstAfter) return { ...base, detectMs, detectedBy: String(failed.detectedBy ?? ''), note: restart ? 'no step after the restart' : 'no restart' };
  const resumedFrom = (firstAfter.step as number) - 1;
  const attempt = restart.attempt as number;
  const spawned = ev.find((e) => e.type === 'rank.spawn' && e.incarnation === attempt);
  const joined = ev.filter((e) => e.type === 'rank.joined' && e.incarnation === attempt && e.t <= firstAfter.t);
  const lastJoin = joined.length ? Math.max(...joined.map((e) => e.t)) : null;
  const phases = spawned && lastJoin !== null ? { stopMs: spawned.t - failed.t, joinMs: lastJoin - spawned.t, initMs: firstAfter.t - lastJoin } : null;
  return {
    ...base,
    detectMs,
    recoverMs: firstAfter.t - failed.t,
    stepsRedone: Math.max(0, lastBefore - resumedFrom),
    resumedFrom,
    detectedBy: String(failed.detectedBy ?? ''),
    phases,
  };
}

function checkGuarantees(plan: FaultPlan, run: RunOnce, reference: (string | undefined)[] | null, faults: FaultOutcome[], maxRestarts: number, world: number): Guarantee[] {
  const g: Guarantee[] = [];
  const r = run.result;
  if (plan.expect === 'absorb') {
    g.push(...absorbGuarantees(plan, run, world));
  } else if (plan.expect === 'give_up') {
    const storm = plan.faults.find((f) => f.kind === 'restart_storm')!;
    const who = storm.target.rank !== undefined ? `rank${storm.target.rank}` : 'rank';
    const named = new RegExp(`first failure: ${who}`).test(String(r.reason));
    g.push({
      name: 'gave up within the restart intensity',
      ok: !r.ok && !!r.giveUp && r.restarts === maxRestarts && named,
      detail: `ok=${r.ok} restarts=${r.restarts} (max_restarts ${maxRestarts}); ${r.reason ?? ''}`.slice(0, 300),
    });
  } else {
    // the job chart must end in `succeeded` too: a stale failure holding it in `recovering` would
    // also switch off the checks only made while running (replica divergence)
    const done = r.ok && r.state === 'succeeded';
    g.push({ name: 'recovered by itself', ok: done, detail: r.ok ? `succeeded at step ${r.lastStep} after ${r.restarts} restart(s); job state ${r.state}` : String(r.reason).slice(0, 300) });
    const refOk = !!reference && reference.length === world && reference.every((h) => typeof h === 'string');
    const same = refOk && Array.from({ length: world }, (_, i) => r.finalHashes[i] === reference![i]).every(Boolean);
    g.push({
      name: 'final weights equal the fault-free run',
      ok: same,
      detail: refOk ? `${same ? 'equal' : 'DIFFERENT'}: ${Array.from({ length: world }, (_, i) => `rank${i} ${(r.finalHashes[i] ?? 'none').slice(0, 12)}`).join(', ')} vs ${reference![0]!.slice(0, 12)}` : 'the reference run failed',
    });
    const expectedFailures = faults.filter((f) => f.fired && FAILING.has(f.kind as Fault['kind'])).length;
    if (expectedFailures > 0) {
      const timed = faults.filter((f) => f.fired && FAILING.has(f.kind as Fault['kind']));
      const allDetected = timed.every((f) => f.detectMs !== null && f.recoverMs !== null);
      g.push({ name: 'every failing fault detected and recovered', ok: allDetected, detail: timed.map((f) => `${f.kind}: ${f.note || 'ok'}`).join('; ') });
    }
    // Each failure costs the group exactly one restart: its echoes (the peers' communication
    // errors, a second rank found hung at the same step) must not restart the fresh group again
    // and spend the restart intensity. Dropped heartbeats may legitimately add a failure.
    if (r.ok && !plan.faults.some((f) => f.kind === 'net_drop')) {
      g.push({ name: 'one restart per failure', ok: r.restarts === expectedFailures, detail: `${r.restarts} restart(s) for ${expectedFailures} failing fault(s)` });
    }
  }
  // checkpoints: a corrupted or torn checkpoint must be skipped for the previous valid one
  for (const c of run.corruptions as (Corruption & { fault: number; attempt: number })[]) {
    const restart = run.events.find((e) => e.type === 'job.restarted' && e.attempt === c.attempt);
    const first = restart ? run.events.find((e) => e.type === 'job.step' && e.t > restart.t) : undefined;
    const resumed = first ? (first.step as number) - 1 : null;
    const prior = run.events.filter((e) => e.type === 'checkpoint.committed' && (e.step as number) < c.step).map((e) => e.step as number);
    const expected = prior.length ? Math.max(...prior) : 0;
    g.push({ name: `corrupted checkpoint-${c.step} skipped`, ok: resumed === expected, detail: `resumed from step ${resumed}, expected ${expected} (${c.mode} ${c.file.split('/').slice(-2).join('/')})` });
  }
  for (const f of plan.faults.filter((x) => x.kind === 'checkpoint_write_fail')) {
    const o = faults[f.index]!;
    if (!o.fired) {
      g.push({ name: 'torn checkpoint write ignored', ok: false, detail: 'the write fault did not fire (no checkpoint at or after its step?)' });
      continue;
    }
    const failed = run.events.find((e) => e.type === 'job.rank.failed' && String(e.code ?? e.reason).includes('ERR_CHAOS_CHECKPOINT_WRITE'));
    const failedEv = failed ?? run.events.find((e) => e.type === 'job.rank.failed');
    const tornStep = (() => {
      const m = /mid-write at step (\d+)/.exec(String(failedEv?.reason ?? ''));
      return m ? Number(m[1]) : null;
    })();
    const prior = run.events.filter((e) => e.type === 'checkpoint.committed' && tornStep !== null && (e.step as number) < tornStep).map((e) => e.step as number);
    const expected = prior.length ? Math.max(...prior) : 0;
    g.push({ name: 'torn checkpoint write ignored', ok: tornStep !== null && o.resumedFrom === expected, detail: `torn at step ${tornStep}; resumed from ${o.resumedFrom}, expected ${expected}` });
  }
  // a fault that never happened proves nothing (probability triggers may legitimately not fire)
  const corrupted = new Set((run.corruptions as (Corruption & { fault: number })[]).map((c) => c.fault));
  const missed = plan.faults.filter((f) => f.trigger.probability === undefined && !faults[f.index]!.fired && !corrupted.has(f.index));
  g.push({ name: 'every fault was injected', ok: missed.length === 0, detail: missed.length ? `not injected: ${missed.map((f) => `faults[${f.index}] ${f.kind}`).join(', ')} (trigger after the job ended?)` : `${plan.faults.length} fault(s)` });
  g.push({ name: 'no process of the job left', ok: run.leftovers.length === 0, detail: run.leftovers.length ? `left alive (killed now): ${run.leftovers.join(', ')}` : `checked ${run.pids.length} pids` });
  void checkpointSteps;
  return g;
}

interface MetricsRow {
  step: number;
  loss: number;
  lr: number;
  grad_mean: number;
  nonfinite: number;
  policy_state: string;
}

function readMetrics(outputDir: string): MetricsRow[] {
  try {
    return readFileSync(join(outputDir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as MetricsRow);
  } catch {
    return [];
  }
}

/** Non-finite values among a safetensors file's tensors (all F32: checkpoints store nothing else), or null if unreadable. */
function nonfiniteWeights(path: string): { values: number; nonfinite: number } | null {
  try {
    const buf = readFileSync(path);
    const headerLen = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const base = 8 + headerLen;
    let values = 0;
    let nonfinite = 0;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (t.dtype !== 'F32') return null;
      const [a, b] = t.data_offsets;
      for (let off = base + a; off < base + b; off += 4) {
        values++;
        if (!Number.isFinite(buf.readFloatLE(off))) nonfinite++;
      }
    }
    return { values, nonfinite };
  } catch {
    return null;
  }
}

/** The guarantees of a plan the gradient policy absorbs (see the header). */
function absorbGuarantees(plan: FaultPlan, run: RunOnce, world: number): Guarantee[] {
  const g: Guarantee[] = [];
  const r = run.result;
  const outputDir = run.outputDir;
  g.push({ name: 'completed (or recovered) by itself', ok: r.ok, detail: r.ok ? `succeeded at step ${r.lastStep} after ${r.restarts} restart(s)` : String(r.reason).slice(0, 300) });
  const rows = readMetrics(outputDir);
  for (const f of plan.faults) {
    const inj = run.injected.get(f.index);
    if (!inj) continue; // reported by 'every fault was injected'
    const at = rows.filter((row) => row.step === inj.step);
    const fmtRow = (row: MetricsRow | undefined) => (row ? `nonfinite ${row.nonfinite}, lr ${row.lr}, grad_mean ${Number(row.grad_mean).toExponential(3)}, policy_state ${row.policy_state}` : 'no metrics row');
    if (f.kind === 'nan_gradients') {
      const skipped = at.find((row) => row.nonfinite > 0 && row.lr === 0);
      const later = rows.filter((row) => row.step > inj.step);
      const laterOk = later.length > 0 && later.every((row) => Number.isFinite(row.loss) && row.nonfinite === 0);
      g.push({ name: `non-finite step ${inj.step} skipped`, ok: !!skipped && laterOk, detail: `step ${inj.step}: ${fmtRow(skipped ?? at[0])}; ${later.length} later step(s) ${laterOk ? 'finite' : 'NOT all finite'}` });
    } else {
      const want = f.kind === 'vanishing_gradients' ? /vanishing/ : /explode/;
      const entered = at.find((row) => want.test(String(row.policy_state)));
      g.push({ name: `${f.kind === 'vanishing_gradients' ? 'vanishing-intervention' : 'explode-clip'} entered at scaled step ${inj.step}`, ok: !!entered, detail: `loss scale ${f.scale}; step ${inj.step}: ${fmtRow(entered ?? at[0])}` });
    }
  }
  const last = rows.length ? Math.max(...rows.map((row) => row.step)) : 0;
  const w = nonfiniteWeights(join(outputDir, `checkpoint-${last}`, 'model.safetensors'));
  g.push({ name: 'final weights finite', ok: !!w && w.values > 0 && w.nonfinite === 0, detail: w ? `checkpoint-${last}: ${w.nonfinite} non-finite of ${w.values} values` : `checkpoint-${last}/model.safetensors unreadable` });
  const hashes = Array.from({ length: world }, (_, i) => r.finalHashes[i]);
  const same = hashes.every((h) => typeof h === 'string' && h === hashes[0]);
  g.push({ name: 'replicas end with identical weights', ok: same, detail: hashes.map((h, i) => `rank${i} ${(h ?? 'none').slice(0, 12)}`).join(', ') });
  return g;
}

/** The report as a table (the `chaos` command prints it). */
export function formatChaosReport(r: ChaosReport): string {
  const ms = (v: number | null) => (v === null ? '-' : `${(v / 1000).toFixed(2)} s`);
  const split = (p: FaultOutcome['phases']) => (p ? [p.stopMs, p.joinMs, p.initMs].map((v) => (v / 1000).toFixed(2)).join('+') : '-');
  const rows = [
    ['#', 'fault', 'target', 'step', 'detected', 'by', 'recovered', 'stop+join+init s', 'redone', 'resumed'],
    ...r.faults.map((f) => [String(f.index), f.kind, f.target, f.step === null ? '-' : String(f.step), ms(f.detectMs), f.detectedBy ?? '-', ms(f.recoverMs), split(f.phases), f.stepsRedone === null ? '-' : String(f.stepsRedone), f.resumedFrom === null ? (f.note || '-') : `step ${f.resumedFrom}`]),
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  const lines = [`plan ${r.plan}: ${r.workload}, ${r.world} ranks, ${(r.wallMs / 1000).toFixed(1)} s`, line(rows[0]!), ...rows.slice(1).map(line), ''];
  for (const g of r.guarantees) lines.push(`${g.ok ? 'PASS' : 'FAIL'}  ${g.name}: ${g.detail}`);
  lines.push(r.ok ? 'all guarantees hold' : 'GUARANTEES VIOLATED');
  return lines.join('\n');
}
