/**
 * The guarantees a plan checks, from its attempt's result, job events, files and fault outcomes:
 *   recover (default): the job ended by itself with success, its final model and newest
 *               checkpoint are the fault-free run's files bit for bit (and the weights the ranks
 *               report equal too), metrics.jsonl holds every step once, in order, every failing
 *               fault was detected and recovered, and each failure restarted the group once (not
 *               once more per echo of it); faults that are no failure (network trouble, a
 *               coordinator pause or kill) restarted nothing;
 *   give_up:    it gave up within the restart intensity, naming the first failure;
 *   absorb:     see absorbGuarantees.ts;
 *   fail_fast:  see failFastGuarantees.ts;
 * and for every plan: a corrupted or torn checkpoint was skipped for the previous valid one,
 * every fault fired and had an effect (a fault that did nothing proves nothing), no process of
 * the job is left, and none of its temporary names (/tmp, /dev/shm). Reads no process state.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventsOf, firstEvent } from '../../actors/events/jobEvents.js';
import { COORDINATOR, FAILING, NET, type Fault, type FaultPlan } from '../FaultPlan.js';
import { absorbGuarantees } from './absorbGuarantees.js';
import type { FaultOutcome } from './analyseFault.js';
import { failFastGuarantees } from './failFastGuarantees.js';
import { compareFiles } from './outputFiles.js';
import type { RunOnce } from './runOnce.js';

export interface Guarantee {
  name: string;
  ok: boolean;
  detail: string;
}

/** What the fault-free run of a job ended with: the weights each rank reported, and the files a user checks. */
export interface ReferenceRun {
  hashes: (string | undefined)[];
  files: Record<string, string>;
}

export interface GuaranteeOptions {
  /** soak rounds: a probability trigger may miss a round (the soak checks that it fired in some round) */
  allowUnfired?: boolean;
}

/** The steps of metrics.jsonl, in file order. */
function metricsSteps(outputDir: string): number[] {
  try {
    return readFileSync(join(outputDir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => Number((JSON.parse(l) as { step?: unknown }).step));
  } catch {
    return [];
  }
}

export async function checkGuarantees(plan: FaultPlan, run: RunOnce, reference: ReferenceRun | null, faults: FaultOutcome[], maxRestarts: number, world: number, o: GuaranteeOptions = {}): Promise<Guarantee[]> {
  const g: Guarantee[] = [];
  const r = run.result;
  if (plan.expect === 'fail_fast') {
    g.push(...(await failFastGuarantees(plan, run)));
  } else if (plan.expect === 'absorb') {
    g.push(...(await absorbGuarantees(plan, run, world)));
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
    g.push(...recoverGuarantees(plan, run, reference, faults, world));
  }
  g.push(...checkpointGuarantees(plan, run, faults));
  // a fault that never happened, or did nothing, proves nothing
  const corrupted = new Set(run.corruptions.map((c) => c.fault));
  const missed = plan.faults.filter((f) => !(o.allowUnfired && f.trigger.probability !== undefined) && ((!faults[f.index]!.fired && !corrupted.has(f.index)) || faults[f.index]!.effects === 0));
  const counts = faults.map((f) => `faults[${f.index}] ${f.kind}: ${f.effects} ${f.effectsOf}`).join('; ');
  g.push({
    name: 'every fault fired and had an effect',
    ok: missed.length === 0,
    detail: missed.length ? `no effect: ${missed.map((f) => `faults[${f.index}] ${f.kind} (${faults[f.index]!.fired || corrupted.has(f.index) ? `fired, 0 ${faults[f.index]!.effectsOf}` : 'did not fire: trigger after the job ended?'})`).join(', ')}` : counts || 'no faults',
  });
  g.push({ name: 'no process of the job left', ok: run.leftovers.length === 0, detail: run.leftovers.length ? `left alive (killed now): ${run.leftovers.join(', ')}` : `checked ${run.pids.length} pids` });
  g.push({ name: 'no temporary name of the job left (/tmp, /dev/shm)', ok: run.leftoverNames.length === 0, detail: run.leftoverNames.length ? `left: ${run.leftoverNames.join(', ')}` : `none owned by the job's ${run.pids.length} processes` });
  return g;
}

function recoverGuarantees(plan: FaultPlan, run: RunOnce, reference: ReferenceRun | null, faults: FaultOutcome[], world: number): Guarantee[] {
  const g: Guarantee[] = [];
  const r = run.result;
  // the job chart must end in `succeeded` too: a stale failure holding it in `recovering` would
  // also switch off the checks only made while running (replica divergence)
  const done = r.ok && r.state === 'succeeded';
  g.push({ name: 'recovered by itself', ok: done, detail: r.ok ? `succeeded at step ${r.lastStep} after ${r.restarts} restart(s); job state ${r.state}` : String(r.reason).slice(0, 300) });
  const ref = reference?.hashes ?? null;
  const refOk = !!ref && ref.length === world && ref.every((h) => typeof h === 'string');
  const same = refOk && Array.from({ length: world }, (_, i) => r.finalHashes[i] === ref![i]).every(Boolean);
  g.push({
    name: 'final weights equal the fault-free run',
    ok: same,
    detail: refOk ? `${same ? 'equal' : 'DIFFERENT'}: ${Array.from({ length: world }, (_, i) => `rank${i} ${(r.finalHashes[i] ?? 'none').slice(0, 12)}`).join(', ')} vs ${ref![0]!.slice(0, 12)}` : 'the reference run failed',
  });
  // what a user checks: the files, not the hashes the ranks report
  const files = run.files ?? {};
  const diff = reference ? compareFiles(files, reference.files) : 'the reference run failed';
  g.push({
    name: 'final model and newest checkpoint are the fault-free files',
    ok: diff === '',
    detail: diff === '' ? `sha256 equal: ${Object.keys(files).sort().join(', ')}` : diff,
  });
  const steps = metricsSteps(run.outputDir);
  const once = steps.length === r.lastStep && steps.every((s, i) => s === i + 1);
  g.push({ name: 'metrics.jsonl holds every step once, in order', ok: once, detail: once ? `steps 1..${r.lastStep}` : `steps ${steps.slice(0, 40).join(',')}${steps.length > 40 ? ',...' : ''} (${steps.length} rows for ${r.lastStep} steps)` });
  // trouble that is not a failure (a lossy network, a paused or restarted coordinator) must not cost a restart
  const harmless = plan.faults.length > 0 && plan.faults.every((f) => (NET.has(f.kind) && f.kind !== 'partition') || COORDINATOR.has(f.kind));
  if (harmless) g.push({ name: 'no restart: nothing failed', ok: r.restarts === 0, detail: `${r.restarts} restart(s)` });
  for (const f of plan.faults.filter((x) => x.kind === 'coordinator_kill')) {
    const o = faults[f.index]!;
    const again = run.upRuns[1];
    const said = again ? /resuming: .*interrupted run of this job/.exec(again.stdout)?.[0] : undefined;
    g.push({
      name: 'the next up resumed the killed run by itself',
      ok: run.upRuns.length === 2 && !!said && o.resumedFrom !== null && o.resumedFrom > 0,
      detail: `${run.upRuns.length} up run(s); resumed from step ${o.resumedFrom ?? '-'} (${o.stepsRedone ?? '-'} step(s) redone); ${said ?? 'no resume message'}`,
    });
  }
  const timed = faults.filter((f) => f.fired && FAILING.has(f.kind as Fault['kind']));
  const expectedFailures = timed.length;
  if (expectedFailures > 0) {
    const allDetected = timed.every((f) => f.detectMs !== null && f.recoverMs !== null);
    g.push({ name: 'every failing fault detected and recovered', ok: allDetected, detail: timed.map((f) => `${f.kind}: ${f.note || 'ok'}`).join('; ') });
  }
  // Each failure costs the group exactly one restart: its echoes (the peers' communication
  // errors, a second rank found hung at the same step) must not restart the fresh group again
  // and spend the restart intensity. Dropped heartbeats may legitimately add a failure.
  if (r.ok && !harmless && !plan.faults.some((f) => f.kind === 'net_drop')) {
    const causes = eventsOf(run.events, 'job.restarted').map((e) => `${e.cause}: ${e.reason}`);
    const detail = `${r.restarts} restart(s) for ${expectedFailures} failing fault(s)`;
    g.push({ name: 'one restart per failure', ok: r.restarts === expectedFailures, detail: r.restarts === expectedFailures ? detail : `${detail}; restarted for: ${causes.join('; ')}` });
  }
  return g;
}

/** A corrupted or torn checkpoint must be skipped for the previous valid one. */
function checkpointGuarantees(plan: FaultPlan, run: RunOnce, faults: FaultOutcome[]): Guarantee[] {
  const g: Guarantee[] = [];
  const committedBefore = (step: number) => {
    const prior = eventsOf(run.events, 'checkpoint.committed', (e) => e.step < step).map((e) => e.step);
    return prior.length ? Math.max(...prior) : 0;
  };
  for (const c of run.corruptions) {
    const restart = firstEvent(run.events, 'job.restarted', (e) => e.attempt === c.attempt);
    const first = restart ? firstEvent(run.events, 'job.step', (e) => e.t > restart.t) : undefined;
    const resumed = first ? first.step - 1 : null;
    const expected = committedBefore(c.step);
    g.push({ name: `corrupted checkpoint-${c.step} skipped`, ok: resumed === expected, detail: `resumed from step ${resumed}, expected ${expected} (${c.mode} ${c.file.split('/').slice(-2).join('/')})` });
  }
  for (const f of plan.faults.filter((x) => x.kind === 'checkpoint_write_fail')) {
    const o = faults[f.index]!;
    if (!o.fired) {
      g.push({ name: 'torn checkpoint write ignored', ok: false, detail: 'the write fault did not fire (no checkpoint at or after its step?)' });
      continue;
    }
    const failures = eventsOf(run.events, 'job.rank.failed');
    const failedEv = failures.find((e) => String(('code' in e ? e.code : undefined) ?? e.reason).includes('ERR_CHAOS_CHECKPOINT_WRITE')) ?? failures[0];
    const m = /mid-write at step (\d+)/.exec(failedEv?.reason ?? '');
    const tornStep = m ? Number(m[1]) : null;
    const expected = tornStep === null ? 0 : committedBefore(tornStep);
    g.push({ name: 'torn checkpoint write ignored', ok: tornStep !== null && o.resumedFrom === expected, detail: `torn at step ${tornStep}; resumed from ${o.resumedFrom}, expected ${expected}` });
  }
  return g;
}
