/**
 * A soak: the same plan, round after round, each with a new seed (so probability triggers pick
 * other steps and ranks), for a chosen number of minutes, sharing one fault-free reference.
 * Every round must hold every guarantee except that a probability trigger may miss a round; over
 * the whole soak every fault must have fired and had an effect at least once. A passed round's
 * output is removed (a soak may run for hours); a failed one's is kept for inspection.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ReferenceRun } from './guarantees.js';
import { runChaos, type ChaosReport, type ChaosRunOptions } from './runChaos.js';

export interface SoakOptions extends ChaosRunOptions {
  minutes: number;
  /** called after each round (the command prints it) */
  onRound?(report: ChaosReport, round: number): void;
}

export interface SoakReport {
  plan: string;
  ok: boolean;
  rounds: number;
  failedRounds: number[];
  /** per fault: in how many rounds it fired with an effect */
  firedIn: number[];
  wallMs: number;
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const cache = o.referenceCache ?? new Map<string, ReferenceRun>();
  const firedIn = o.plan.faults.map(() => 0);
  const failedRounds: number[] = [];
  let round = 0;
  // at least one round; no new round once the time is up
  do {
    const dir = join(o.outputDir, `round-${round}`);
    const r = await runChaos({ ...o, outputDir: dir, referenceCache: cache, allowUnfired: true, seed: o.plan.seed + round });
    for (const f of r.faults) if (f.fired && f.effects > 0) firedIn[f.index]!++;
    if (r.ok) rmSync(join(dir, 'fault'), { recursive: true, force: true });
    else failedRounds.push(round);
    o.onRound?.(r, round);
    round++;
  } while (Date.now() - t0 < o.minutes * 60_000);
  rmSync(join(o.outputDir, 'round-0', 'reference'), { recursive: true, force: true });
  return { plan: o.plan.name, ok: failedRounds.length === 0 && firedIn.every((n) => n > 0), rounds: round, failedRounds, firedIn, wallMs: Date.now() - t0 };
}

export function formatSoakReport(s: SoakReport, faults: { index: number; kind: string }[]): string {
  const lines = [`soak of plan ${s.plan}: ${s.rounds} round(s) in ${(s.wallMs / 60_000).toFixed(1)} min`];
  for (const f of faults) lines.push(`  faults[${f.index}] ${f.kind}: fired with an effect in ${s.firedIn[f.index]} of ${s.rounds} round(s)`);
  lines.push(s.failedRounds.length ? `FAIL  rounds with a violated guarantee: ${s.failedRounds.join(', ')}` : 'PASS  every round held every guarantee');
  lines.push(s.firedIn.every((n) => n > 0) ? 'PASS  every fault fired in some round' : 'FAIL  some fault never fired: raise its probability or the job\'s steps');
  lines.push(s.ok ? 'soak passed' : 'SOAK FAILED');
  return lines.join('\n');
}
