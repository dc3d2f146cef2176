/**
 * One attempt of a plan: the job under its faults (or none, for the fault-free reference), with
 * the coordinator in this process and node agents and ranks as local child processes (plans with
 * coordinator faults run `up` itself instead: runUpOnce.ts). The harness injects its own faults
 * (signals through the node agents, the coordinator-side fault proxy, checkpoint corruption
 * between attempts, a malformed dataset, a full disk) on their triggers, hands the rank-side
 * faults to the ranks (ULYSSES_CHAOS), records everything as job events, counts what its faults
 * did, and afterwards checks that no process of the job is left (killing any by pid) and that
 * none left a temporary name behind (sweepStale.ts). Never leaves a timer or a process behind;
 * what must outlive the report (a tmpfs) goes away with cleanup().
 */
import { rmSync } from 'node:fs';
import { Coordinator, type JobResult } from '../../actors/coordinator/index.js';
import { eventsOf, jobEvents, type JobEvent } from '../../actors/events/jobEvents.js';
import { LocalLauncher } from '../../actors/launchers/LocalLauncher.js';
import { entriesOwnedBy } from '../../actors/sweepStale.js';
import type { JobSpec } from '../../config/JobSpec.js';
import type { Transport } from '../../transport/Transport.js';
import type { Logger } from '../../util/Logger.js';
import { RANK_SIDE, keyedUniform, type Fault, type FaultPlan } from '../FaultPlan.js';
import { FaultProxy, type FaultProxyStats, type NetRule } from '../FaultProxy.js';
import { corruptNewestCheckpoint, type Corruption } from '../injectFiles.js';
import { firedRule, isUntriggered, netKindOf, wholeRunRule } from '../netFaults.js';
import { CHAOS_ENV } from '../chaosEnv.js';
import type { RankChaosSpec } from '../RankChaos.js';
import { fillUp, mountTmpfs, unmount } from './diskFull.js';
import { addRankInjections, readRankEffects, watchFiredMarkers, type Injection } from './firedMarkers.js';
import { writeMalformedDataset, type MalformedData } from './malformedData.js';
import { outputFileHashes } from './outputFiles.js';
import { killLeftovers, leftoverPids } from './processes.js';

/** A checkpoint the harness damaged, by which fault and before which attempt. */
export interface FaultCorruption extends Corruption {
  fault: number;
  attempt: number;
}

export interface RunOnce {
  result: JobResult;
  events: JobEvent[];
  pids: number[];
  leftovers: number[];
  injected: Map<number, Injection>;
  corruptions: FaultCorruption[];
  wallMs: number;
  /** what the coordinator-side fault proxy did (null: none) */
  proxyFaults: FaultProxyStats | null;
  outputDir: string;
  /** what each fault did, as counted by the harness (its own faults) and by the ranks (theirs) */
  harnessEffects: Map<number, number>;
  rankEffects: Map<number, number>;
  /** temporary names (job key dirs, shared memory) that the job's processes left behind */
  leftoverNames: string[];
  /** the malformed dataset the job was given (malformed_row) */
  malformed: MalformedData | null;
  /** what each `up` of the attempt printed and how it ended (runUpOnce.ts only) */
  upRuns: { stdout: string; stderr: string; code: number | null; signal: string | null }[];
  /** sha256 of the final model and the newest checkpoint's files (outputFiles.ts) */
  files: Record<string, string>;
  /** removes what had to outlive the report (a tmpfs); safe to call twice */
  cleanup(): void;
}

/** Thrown when a fault needs something this machine refuses (a tmpfs mount without root): the plan cannot run here. */
export class ChaosUnavailable extends Error {
  readonly code = 'ERR_CHAOS_UNAVAILABLE';
}

export interface RunOnceOptions {
  plan: FaultPlan;
  faults: Fault[];
  /** the job; it writes to job.config.output_dir (emptied first) */
  job: JobSpec;
  hosts: { host: string; slots: number }[];
  workload: string;
  logger: Logger;
  cliEntry: string;
  env: NodeJS.ProcessEnv;
  /** the job as a job file holds it, and the flags on top (runUpOnce.ts writes and passes them to `up`) */
  document?: { keys: Record<string, unknown>; flags: string[] };
}

/** A coordinator-side network fault: the harness's proxy injects it; every other network fault is the rank's. */
const coordinatorNet = (f: Fault) => netKindOf(f) !== undefined && f.side === 'coordinator';

export async function runOnce(o: RunOnceOptions): Promise<RunOnce> {
  const outputDir = o.job.config.output_dir;
  rmSync(outputDir, { recursive: true, force: true });
  rmSync(`${outputDir}-data`, { recursive: true, force: true });
  const t0 = Date.now();
  const harnessEffects = new Map<number, number>();
  const bump = (f: Fault, n = 1) => harnessEffects.set(f.index, (harnessEffects.get(f.index) ?? 0) + n);
  const fills: Promise<void>[] = [];
  // a malformed row: the job trains on a dataset of the harness's, with one line cut short
  const bad = o.faults.find((f) => f.kind === 'malformed_row');
  const malformed = bad ? writeMalformedDataset(`${outputDir}-data`, bad.row) : null;
  let job = o.job;
  if (malformed) job = { ...job, config: { ...job.config, dataset: [malformed.dataset], dataset_dir: malformed.datasetDir } };
  // a full disk: output_dir is a small tmpfs of its own, filled up when the fault fires
  const diskFull = o.faults.filter((f) => f.kind === 'disk_full');
  let mounted = false;
  if (diskFull.length) {
    const why = mountTmpfs(outputDir);
    if (why) throw new ChaosUnavailable(`disk_full: ${why}`);
    mounted = true;
  }
  const cleanup = () => {
    if (mounted) unmount(outputDir);
    mounted = false;
  };
  const hostOf = o.hosts.flatMap((h, i) => Array.from({ length: h.slots }, () => i));
  const ranksOf = (f: Fault) => (f.target.rank !== undefined ? [f.target.rank] : hostOf.flatMap((h, r) => (h === f.target.host ? [r] : [])));
  const peersOf = (f: Fault) => ranksOf(f).map((r) => `rank:${r}`);
  const rankSide: RankChaosSpec = { seed: o.plan.seed, faults: o.faults.filter((f) => RANK_SIDE.has(f.kind) && !coordinatorNet(f)) };
  const coordNet = o.faults.filter(coordinatorNet);
  // set by the coordinator when it wraps its transport (only when the plan has coordinator-side faults)
  const coordProxy: { proxy: FaultProxy | null } = { proxy: null };
  // the coordinator-side rules of each fault: the frames they hit are its effects
  const coordRules = new Map<number, NetRule[]>();
  const addCoordRule = (f: Fault, p: FaultProxy, r: NetRule) => {
    p.addRule(r);
    coordRules.set(f.index, [...(coordRules.get(f.index) ?? []), r]);
  };
  const launcher = new LocalLauncher(o.cliEntry, o.logger, o.env);
  const coord = new Coordinator({
    job,
    hosts: o.hosts,
    launcher,
    logger: o.logger,
    workload: o.workload,
    rankEnv: rankSide.faults.length ? { [CHAOS_ENV]: JSON.stringify(rankSide) } : undefined,
    wrapTransport: coordNet.length
      ? (t: Transport) => {
          const p = (coordProxy.proxy = new FaultProxy(t, { seed: o.plan.seed }));
          for (const f of coordNet) if (isUntriggered(f)) addCoordRule(f, p, wholeRunRule(f, netKindOf(f)!, peersOf(f)));
          return p;
        }
      : undefined,
  });

  // harness-side injectors
  const injected = new Map<number, Injection>();
  const corruptions: FaultCorruption[] = [];
  const harness = o.faults.filter((f) => !RANK_SIDE.has(f.kind) || coordinatorNet(f));
  const timers: NodeJS.Timeout[] = [];
  let lastStep = 0;
  const inject = (f: Fault, step: number) => {
    if (injected.has(f.index)) return;
    const ranks = ranksOf(f);
    injected.set(f.index, { wallMs: Date.now(), step, ranks });
    coord.events.emit(jobEvents.chaosInjected({ fault: f.index, kind: f.kind, ranks, step }));
    const kind = netKindOf(f);
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
            coord.events.emit(jobEvents.chaosResumed({ fault: f.index, kind: f.kind, ranks }));
          }, f.durationS * 1000),
        );
        break;
      case 'malformed_row':
        break;
      case 'disk_full':
        // awaited before the effects are counted: a rank can meet the full disk and the job end
        // while the last, smaller pieces are still being written
        fills.push(
          fillUp(outputDir).then((bytes) => {
            bump(f, bytes > 0 ? 1 : 0);
            coord.events.emit(jobEvents.chaosResumed({ fault: f.index, kind: `${f.kind} (${(bytes / 2 ** 20).toFixed(1)} MiB written)`, ranks }));
          }),
        );
        break;
      default:
        if (kind && coordProxy.proxy) addCoordRule(f, coordProxy.proxy, firedRule(f, kind, peersOf(f), coordProxy.proxy.elapsedMs));
        break;
    }
  };
  const unsubscribe = coord.events.subscribe((e) => {
    if (e.type === 'job.started') {
      for (const f of harness) {
        if (f.trigger.atTimeS !== undefined) timers.push(setTimeout(() => inject(f, lastStep + 1), f.trigger.atTimeS * 1000));
        // the malformed row is in the data from the start
        if (f.kind === 'malformed_row') inject(f, 0);
      }
    } else if (e.type === 'job.step') {
      const { step } = e;
      lastStep = step;
      for (const f of harness) {
        if (injected.has(f.index) || isUntriggered(f)) continue;
        // "at step N": once the job has completed step N-1 (step 1: once step 1 is done)
        if (f.trigger.atStep !== undefined && step >= Math.max(1, f.trigger.atStep - 1)) inject(f, step + 1);
        else if (f.trigger.probability !== undefined && keyedUniform(o.plan.seed, f.index, ranksOf(f)[0] ?? 0, step + 1) < f.trigger.probability) inject(f, step + 1);
      }
    } else if (e.type === 'rank.spawn' && e.incarnation > 0 && e.rank === 0) {
      // between attempts: every rank of the old attempt is stopped, the new ones are not up yet
      for (const f of o.faults) {
        if (f.kind !== 'checkpoint_corrupt' || corruptions.some((c) => c.fault === f.index)) continue;
        const c = corruptNewestCheckpoint(outputDir, f.mode, o.plan.seed + f.index);
        if (c) {
          corruptions.push({ ...c, fault: f.index, attempt: e.incarnation });
          coord.events.emit(jobEvents.chaosCheckpointCorrupted({ fault: f.index, step: c.step, file: c.file, mode: c.mode, attempt: e.incarnation }));
        }
      }
    }
  });

  // faults the ranks inject themselves show up in events.ndjson too (for the visualizer)
  const stopWatching = watchFiredMarkers(outputDir, (m) =>
    coord.events.emit(jobEvents.chaosInjected({ fault: m.fault, kind: m.kind, ranks: [m.rank], step: m.step > 0 ? m.step : null, side: 'rank', firedAt: new Date(m.wallMs).toISOString() })),
  );

  let result: JobResult;
  try {
    result = await coord.run();
  } catch (e) {
    cleanup();
    throw e;
  } finally {
    stopWatching();
    unsubscribe();
    for (const t of timers) clearTimeout(t);
  }
  await Promise.all(fills);
  const events = [...coord.events.recent];
  const joinedPids = [...eventsOf(events, 'agent.joined'), ...eventsOf(events, 'rank.joined')].map((e) => e.pid);
  const pids = [...new Set([...launcher.pids, ...joinedPids])];
  const leftovers = await leftoverPids(pids, 3000);
  killLeftovers(leftovers);
  // rank-side faults record when they fired, and what they did
  addRankInjections(outputDir, o.faults, ranksOf, injected);
  for (const c of corruptions) harnessEffects.set(c.fault, (harnessEffects.get(c.fault) ?? 0) + c.bytes);
  for (const [fault, rules] of coordRules) harnessEffects.set(fault, (harnessEffects.get(fault) ?? 0) + rules.reduce((a, r) => a + (r.hits ?? 0), 0));
  const proxyFaults = coordProxy.proxy ? { ...coordProxy.proxy.faults } : null;
  const leftoverNames = entriesOwnedBy(pids);
  const files = await outputFileHashes(outputDir);
  return { result, events, pids, leftovers, injected, corruptions, wallMs: Date.now() - t0, proxyFaults, outputDir, harnessEffects, rankEffects: readRankEffects(outputDir), leftoverNames, malformed, upRuns: [], files, cleanup };
}
