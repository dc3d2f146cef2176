/**
 * What became of one fault of a plan, read from the attempt's job events: whether it fired, what
 * it did (a count of effects: processes killed or found frozen or hung, frames hit, steps slowed
 * or scaled, values poisoned, bytes damaged, coordinator stops, refused rows, writes without
 * space), the time to detect it (injected -> job.rank.failed), the time to recover (detected ->
 * the first step after the restart) split into stopping the old group, starting the new
 * processes and the ranks' own start-up, the steps redone and the step resumed from. Pure.
 */
import { firstEvent, eventsOf, type JobEvent } from '../../actors/events/jobEvents.js';
import { DETERMINISTIC, FAILING, NET, type Fault } from '../FaultPlan.js';
import { isUntriggered } from '../netFaults.js';
import type { RunOnce } from './runOnce.js';

export interface FaultOutcome {
  index: number;
  kind: string;
  target: string;
  fired: boolean;
  /** what it did (see effectsOf), 0: nothing */
  effects: number;
  /** what `effects` counts */
  effectsOf: string;
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

/** What the effects of a fault of this kind are counted in. */
const EFFECT_UNIT: Record<Fault['kind'], string> = {
  crash: 'target failures seen', freeze: 'target failures seen', hang: 'stalled loops', collective_crash: 'deaths in a collective',
  nan_gradients: 'values poisoned', vanishing_gradients: 'steps scaled', exploding_gradients: 'steps scaled', slow: 'steps slowed',
  net_drop: 'frames hit', net_delay: 'frames hit', net_duplicate: 'frames hit', net_reorder: 'frames hit', partition: 'frames dropped',
  checkpoint_corrupt: 'bytes damaged', checkpoint_write_fail: 'torn writes', restart_storm: 'deaths at start',
  coordinator_pause: 'coordinator stops', coordinator_kill: 'coordinator kills', malformed_row: 'refusals of the row', disk_full: 'writes without space',
};

/** The count of a fault's effects, from whoever saw them: the ranks, the harness, or the job's events. */
export function effectsOf(f: Fault, run: RunOnce, injectedAtMs: number | null): number {
  const failedAfter = (pred: (e: ReturnType<typeof eventsOf<'job.rank.failed'>>[number]) => boolean) =>
    eventsOf(run.events, 'job.rank.failed', (e) => (injectedAtMs === null || wall(e) >= injectedAtMs - 5) && pred(e)).length;
  const targets = new Set(run.injected.get(f.index)?.ranks ?? []);
  switch (f.kind) {
    case 'crash':
    case 'freeze':
      return failedAfter((e) => targets.has(e.rank));
    case 'checkpoint_corrupt':
      return (run.harnessEffects.get(f.index) ?? 0) + (f.trigger.atStep !== undefined ? failedAfter((e) => targets.has(e.rank)) : 0);
    case 'malformed_row':
      return failedAfter((e) => e.detectedBy === 'rank' && e.code === 'ERR_DATA');
    case 'disk_full':
      return (run.harnessEffects.get(f.index) ?? 0) > 0 ? failedAfter((e) => e.detectedBy === 'rank' && /ENOSPC|no space/i.test(`${e.code ?? ''} ${e.reason}`)) : 0;
    case 'coordinator_pause':
    case 'coordinator_kill':
      return run.harnessEffects.get(f.index) ?? 0;
    default:
      // network faults of the coordinator's side are counted by the harness's proxy, the rest by the ranks
      return NET.has(f.kind) && f.side === 'coordinator' ? (run.harnessEffects.get(f.index) ?? 0) : (run.rankEffects.get(f.index) ?? 0);
  }
}

export function analyseFault(f: Fault, run: RunOnce, absorbed = false): FaultOutcome {
  const inj = run.injected.get(f.index);
  const target = f.kind === 'checkpoint_corrupt' && f.trigger.atStep === undefined ? 'newest ckpt' : f.kind.startsWith('coordinator_') ? 'coordinator' : f.kind === 'malformed_row' ? `line ${f.row}` : f.kind === 'disk_full' ? 'output_dir' : f.target.rank !== undefined ? `rank ${f.target.rank}` : `host ${f.target.host}`;
  const effects = effectsOf(f, run, inj?.wallMs ?? null);
  const base: FaultOutcome = { index: f.index, kind: f.kind, target, fired: !!inj, effects, effectsOf: EFFECT_UNIT[f.kind], step: inj && inj.step > 0 ? inj.step : null, detectMs: null, recoverMs: null, stepsRedone: null, resumedFrom: null, detectedBy: null, phases: null, note: '' };
  if (!inj && isUntriggered(f) && f.kind.startsWith('net_')) {
    // a whole-run network fault fired if it hit anything
    const pf = f.side === 'coordinator' ? run.proxyFaults : null;
    const counts = pf ? `: ${pf.dropped} dropped, ${pf.delayed} delayed, ${pf.duplicated} duplicated, ${pf.reordered} reordered` : '';
    return { ...base, fired: effects > 0, note: `whole run (${f.side} side${counts})` };
  }
  // a checkpoint corrupted between attempts is timed by the failure that caused the attempt
  if (!inj) return { ...base, note: f.kind === 'checkpoint_corrupt' && run.corruptions.some((c) => c.fault === f.index) ? 'corrupted between attempts' : 'did not fire' };
  if (f.kind === 'coordinator_kill') {
    // the next `up` resumed the run: from the step after its newest checkpoint
    const starts = run.events.flatMap((e, i) => (e.type === 'job.started' ? [i] : []));
    const again = starts.length > 1 ? run.events.slice(starts[starts.length - 1]) : [];
    const first = firstEvent(again, 'job.step');
    const before = eventsOf(run.events.slice(0, starts[starts.length - 1] ?? 0), 'job.step').map((e) => e.step);
    if (!first) return { ...base, note: starts.length > 1 ? 'no step after up ran again' : 'up did not run again' };
    const resumedFrom = first.step - 1;
    return { ...base, resumedFrom, stepsRedone: Math.max(0, Math.max(0, ...before) - resumedFrom), note: `up again, resumed from step ${resumedFrom}` };
  }
  if (f.kind === 'coordinator_pause') return { ...base, note: 'trained on through it' };
  if (DETERMINISTIC.has(f.kind)) return { ...base, note: effects > 0 ? 'failed at once, no restart' : 'no rank refused it' };
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
