/**
 * One attempt of a plan with coordinator faults: the coordinator must be a process of its own to
 * be paused or killed, so the harness runs `ulysses-actors up` on the job (written out as a job
 * file beside output_dir) and follows its events.ndjson. coordinator_pause stops `up` with
 * SIGSTOP (checking that it really stopped) and resumes it after duration_s; coordinator_kill
 * kills it with SIGKILL, waits until the job's agents and ranks are gone (their lifeline closes
 * with `up`), and runs `up` again on the same config, which resumes by itself. The job's result is
 * read from what every `up` printed and logged. Never leaves a process behind: leftovers are
 * killed by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { dump } from 'js-yaml';
import type { JobResult } from '../../actors/coordinator/index.js';
import { eventsOf, type JobEvent } from '../../actors/events/jobEvents.js';
import { entriesOwnedBy } from '../../actors/sweepStale.js';
import type { Fault } from '../FaultPlan.js';
import type { Injection } from './firedMarkers.js';
import { outputFileHashes } from './outputFiles.js';
import { alive, killLeftovers, leftoverPids } from './processes.js';
import type { RunOnce, RunOnceOptions } from './runOnce.js';

/** How long the harness waits for a killed `up`'s agents and ranks to go before starting it again. */
const OLD_JOB_GONE_MS = 20_000;

/** Follows a growing NDJSON file: every complete line once, in order. */
class EventsTail {
  private offset = 0;
  private partial = '';
  readonly all: JobEvent[] = [];
  constructor(private readonly path: string) {}

  read(): JobEvent[] {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return [];
    }
    if (size <= this.offset) return [];
    const fd = openSync(this.path, 'r');
    const buf = Buffer.alloc(size - this.offset);
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.partial + buf.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    const fresh: JobEvent[] = [];
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        fresh.push(JSON.parse(l) as JobEvent);
      } catch {
        /* not an event line */
      }
    }
    this.all.push(...fresh);
    return fresh;
  }
}

interface UpRun {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<{ code: number | null; signal: string | null }>;
}

function startUp(o: RunOnceOptions, jobFile: string): UpRun {
  const child = spawn(process.execPath, [o.cliEntry, 'up', jobFile, '--workload', o.workload, ...(o.document?.flags ?? [])], { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: UpRun = { child, stdout: '', stderr: '', exit: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))) };
  child.stdout!.on('data', (b: Buffer) => (run.stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (run.stderr += b.toString()));
  return run;
}

/** Whether a process is stopped (state T in /proc). */
function stopped(pid: number): boolean {
  try {
    return / T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^\d+ \(.*\)/, ''));
  } catch {
    return false;
  }
}

const jobPidsOf = (events: JobEvent[]) => [...eventsOf(events, 'agent.joined'), ...eventsOf(events, 'rank.joined')].map((e) => e.pid);

export async function runUpOnce(o: RunOnceOptions): Promise<RunOnce> {
  const outputDir = o.job.config.output_dir;
  rmSync(outputDir, { recursive: true, force: true });
  const t0 = Date.now();
  const jobFile = `${outputDir}.job.yaml`;
  mkdirSync(dirname(jobFile), { recursive: true });
  // the job as a job file holds it (its keys before resolution), writing where this attempt does; no visualizer port to take
  if (!o.document) throw new Error('runUpOnce: the job document is required');
  const cluster = typeof o.document.keys.cluster === 'object' && o.document.keys.cluster !== null ? o.document.keys.cluster : {};
  const keys = { ...o.document.keys, output_dir: outputDir, cluster: { ...cluster, visualizer: { enabled: false } } };
  writeFileSync(jobFile, `# written by ulysses-actors chaos for plan ${o.plan.name}\n${dump(keys)}`);
  const tail = new EventsTail(`${outputDir}/events.ndjson`);
  const injected = new Map<number, Injection>();
  const harnessEffects = new Map<number, number>();
  const bump = (f: Fault) => harnessEffects.set(f.index, (harnessEffects.get(f.index) ?? 0) + 1);
  const runs: UpRun[] = [startUp(o, jobFile)];
  const timers: NodeJS.Timeout[] = [];
  let restarting: Promise<void> | null = null;
  let current = runs[0]!;

  const inject = (f: Fault, step: number) => {
    if (injected.has(f.index)) return;
    const pid = current.child.pid;
    if (pid === undefined) return;
    injected.set(f.index, { wallMs: Date.now(), step, ranks: [] });
    if (f.kind === 'coordinator_pause') {
      process.kill(pid, 'SIGSTOP');
      const check = setTimeout(() => {
        if (stopped(pid)) bump(f);
      }, 200);
      timers.push(check, setTimeout(() => process.kill(pid, 'SIGCONT'), f.durationS * 1000));
    } else if (f.kind === 'coordinator_kill') {
      const killed = current;
      const oldPids = jobPidsOf(tail.all);
      process.kill(pid, 'SIGKILL');
      restarting = (async () => {
        const { signal } = await killed.exit;
        if (signal === 'SIGKILL') bump(f);
        // its agents see their lifeline close and stop the ranks; the new `up` must not run beside them
        await leftoverPids(oldPids, OLD_JOB_GONE_MS);
        current = startUp(o, jobFile);
        runs.push(current);
      })();
    }
  };

  let lastStep = 0;
  const poll = setInterval(() => {
    for (const e of tail.read()) {
      if (e.type === 'job.started') {
        for (const f of o.faults) if (f.trigger.atTimeS !== undefined && !injected.has(f.index)) timers.push(setTimeout(() => inject(f, lastStep + 1), f.trigger.atTimeS * 1000));
      } else if (e.type === 'job.step') {
        lastStep = Math.max(lastStep, e.step);
        // "at step N": once the job has completed step N-1, as the in-process harness does
        for (const f of o.faults) if (f.trigger.atStep !== undefined && e.step >= Math.max(1, f.trigger.atStep - 1)) inject(f, e.step + 1);
      }
    }
  }, 50);

  let last: { code: number | null; signal: string | null };
  try {
    for (;;) {
      const run = current;
      last = await run.exit;
      if (restarting) {
        await restarting;
        restarting = null;
      }
      if (current === run) break;
    }
  } finally {
    clearInterval(poll);
    for (const t of timers) clearTimeout(t);
    for (const r of runs) if (r.child.pid !== undefined && alive(r.child.pid)) killLeftovers([r.child.pid]);
  }
  tail.read();
  const events = tail.all;
  const finalRun = runs[runs.length - 1]!;
  const lastStart = events.map((e) => e.type).lastIndexOf('job.started');
  const lastAttempt = events.slice(Math.max(0, lastStart));
  const finalHashes: (string | undefined)[] = [];
  for (const e of eventsOf(lastAttempt, 'rank.done')) finalHashes[e.rank] = e.finalHash;
  const states = eventsOf(events, 'job.state');
  const failedLine = /job failed: (.*)/.exec(finalRun.stderr)?.[1] ?? null;
  const result: JobResult = {
    ok: last!.code === 0,
    state: states[states.length - 1]?.state ?? 'unknown',
    reason: last!.code === 0 ? null : (failedLine ?? `up exited with ${last!.signal ?? `code ${last!.code}`}`),
    restarts: eventsOf(events, 'job.restarted').length,
    finalHashes,
    lastStep: Math.max(0, ...eventsOf(events, 'job.step').map((e) => e.step)),
  };
  const upPids = runs.map((r) => r.child.pid).filter((p): p is number => p !== undefined);
  const pids = [...new Set([...upPids, ...jobPidsOf(events)])];
  const leftovers = await leftoverPids(pids, 3000);
  killLeftovers(leftovers);
  rmSync(jobFile, { force: true });
  return {
    result,
    events,
    pids,
    leftovers,
    injected,
    corruptions: [],
    wallMs: Date.now() - t0,
    proxyFaults: null,
    outputDir,
    harnessEffects,
    rankEffects: new Map(),
    leftoverNames: entriesOwnedBy(pids),
    malformed: null,
    files: await outputFileHashes(outputDir),
    upRuns: runs.map((r) => ({ stdout: r.stdout, stderr: r.stderr, code: r.child.exitCode, signal: r.child.signalCode })),
    cleanup: () => {},
  };
}
