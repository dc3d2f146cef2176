/**
 * What became of one fault of a plan, read from the attempt's job events: whether it fired, the
 * time to detect it (injected -> job.rank.failed), the time to recover (detected -> the first
 * step after the restart) split into stopping the old group, starting the new processes and the
 * ranks' own start-up, the steps redone and the step resumed from. Pure.
 */
import { firstEvent, eventsOf, type JobEvent } from '../../actors/events/jobEvents.js';
import { FAILING, type Fault } from '../FaultPlan.js';
import { isUntriggered } from '../netFaults.js';
import type { RunOnce } from './runOnce.js';

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

const wall = (e: JobEvent) => Date.parse(e.time);

export function analyseFault(f: Fault, run: RunOnce, absorbed = false): FaultOutcome {
  const inj = run.injected.get(f.index);
  const target = f.kind === 'checkpoint_corrupt' && f.trigger.atStep === undefined ? 'newest ckpt' : f.target.rank !== undefined ? `rank ${f.target.rank}` : `host ${f.target.host}`;
  const base: FaultOutcome = { index: f.index, kind: f.kind, target, fired: !!inj, step: inj?.step ?? null, detectMs: null, recoverMs: null, stepsRedone: null, resumedFrom: null, detectedBy: null, phases: null, note: '' };
  if (!inj && isUntriggered(f) && f.kind.startsWith('net_')) {
    const pf = f.side === 'coordinator' ? run.proxyFaults : null;
    const counts = pf ? `: ${pf.dropped} dropped, ${pf.delayed} delayed, ${pf.duplicated} duplicated, ${pf.reordered} reordered` : '';
    return { ...base, fired: true, note: `whole run (${f.side} side${counts})` };
  }
  if (!inj) return { ...base, note: f.kind === 'checkpoint_corrupt' && run.corruptions.length ? 'corrupted between attempts' : 'did not fire' };
  if (!FAILING.has(f.kind)) return { ...base, note: 'no failure expected' };
  const ev = run.events;
  // checkpoint_corrupt fires when the attempt starts; its own kill (at_step) is the failure timed
  const failed = firstEvent(ev, 'job.rank.failed', (e) => wall(e) >= inj.wallMs - 5);
  if (!failed) return { ...base, note: absorbed ? 'absorbed by the gradient policy' : 'no failure was detected' };
  const detectMs = wall(failed) - inj.wallMs;
  const detectedBy = failed.detectedBy;
  const restart = firstEvent(ev, 'job.restarted', (e) => e.t >= failed.t);
  const before = eventsOf(ev, 'job.step', (e) => e.t <= failed.t).map((e) => e.step);
  const lastBefore = before.length ? Math.max(...before) : 0;
  const firstAfter = restart ? firstEvent(ev, 'job.step', (e) => e.t > restart.t) : undefined;
  if (restart && !firstAfter && run.result.ok) {
    // the restart resumed from the final checkpoint (the rest of the group had finished meanwhile):
    // nothing to redo; recovered when the new attempt's ranks were done
    const done = firstEvent(ev, 'rank.done', (e) => e.t > restart.t);
    if (done) return { ...base, detectMs, recoverMs: done.t - failed.t, stepsRedone: 0, resumedFrom: done.step, detectedBy, note: 'resumed at the end' };
  }
  if (!restart || !firstAfter) return { ...base, detectMs, detectedBy, note: restart ? 'no step after the restart' : 'no restart' };
  const resumedFrom = firstAfter.step - 1;
  const attempt = restart.attempt;
  const spawned = firstEvent(ev, 'rank.spawn', (e) => e.incarnation === attempt);
  const joined = eventsOf(ev, 'rank.joined', (e) => e.incarnation === attempt && e.t <= firstAfter.t);
  const lastJoin = joined.length ? Math.max(...joined.map((e) => e.t)) : null;
  const phases = spawned && lastJoin !== null ? { stopMs: spawned.t - failed.t, joinMs: lastJoin - spawned.t, initMs: firstAfter.t - lastJoin } : null;
  return {
    ...base,
    detectMs,
    recoverMs: firstAfter.t - failed.t,
    stepsRedone: Math.max(0, lastBefore - resumedFrom),
    resumedFrom,
    detectedBy,
    phases,
  };
}
