/**
 * The guarantees a plan checks, from its attempt's result, job events and fault outcomes:
 *   recover (default): the job ended by itself with success, the final weights equal the
 *               fault-free run's, every failing fault was detected and recovered, and each
 *               failure restarted the group once (not once more per echo of it);
 *   give_up:    it gave up within the restart intensity, naming the first failure;
 *   absorb:     see absorbGuarantees.ts;
 * and for every plan: a corrupted or torn checkpoint was skipped for the previous valid one,
 * every fault was injected, and no process of the job is left. Reads no process state.
 */
import { eventsOf, firstEvent } from '../../actors/events/jobEvents.js';
import { FAILING, type Fault, type FaultPlan } from '../FaultPlan.js';
import { absorbGuarantees } from './absorbGuarantees.js';
import type { FaultOutcome } from './analyseFault.js';
import type { RunOnce } from './runOnce.js';

export interface Guarantee {
  name: string;
  ok: boolean;
  detail: string;
}

export async function checkGuarantees(plan: FaultPlan, run: RunOnce, reference: (string | undefined)[] | null, faults: FaultOutcome[], maxRestarts: number, world: number): Promise<Guarantee[]> {
  const g: Guarantee[] = [];
  const r = run.result;
  if (plan.expect === 'absorb') {
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
  // a fault that never happened proves nothing (probability triggers may legitimately not fire)
  const corrupted = new Set(run.corruptions.map((c) => c.fault));
  const missed = plan.faults.filter((f) => f.trigger.probability === undefined && !faults[f.index]!.fired && !corrupted.has(f.index));
  g.push({ name: 'every fault was injected', ok: missed.length === 0, detail: missed.length ? `not injected: ${missed.map((f) => `faults[${f.index}] ${f.kind}`).join(', ')} (trigger after the job ended?)` : `${plan.faults.length} fault(s)` });
  g.push({ name: 'no process of the job left', ok: run.leftovers.length === 0, detail: run.leftovers.length ? `left alive (killed now): ${run.leftovers.join(', ')}` : `checked ${run.pids.length} pids` });
  return g;
}

function recoverGuarantees(plan: FaultPlan, run: RunOnce, reference: (string | undefined)[] | null, faults: FaultOutcome[], world: number): Guarantee[] {
  const g: Guarantee[] = [];
  const r = run.result;
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
  const timed = faults.filter((f) => f.fired && FAILING.has(f.kind as Fault['kind']));
  const expectedFailures = timed.length;
  if (expectedFailures > 0) {
    const allDetected = timed.every((f) => f.detectMs !== null && f.recoverMs !== null);
    g.push({ name: 'every failing fault detected and recovered', ok: allDetected, detail: timed.map((f) => `${f.kind}: ${f.note || 'ok'}`).join('; ') });
  }
  // Each failure costs the group exactly one restart: its echoes (the peers' communication
  // errors, a second rank found hung at the same step) must not restart the fresh group again
  // and spend the restart intensity. Dropped heartbeats may legitimately add a failure.
  if (r.ok && !plan.faults.some((f) => f.kind === 'net_drop')) {
    g.push({ name: 'one restart per failure', ok: r.restarts === expectedFailures, detail: `${r.restarts} restart(s) for ${expectedFailures} failing fault(s)` });
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
