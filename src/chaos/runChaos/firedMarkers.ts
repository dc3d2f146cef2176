/**
 * The markers a rank writes when it fires a fault of the plan (RankChaos.ts, `chaos-fired/`):
 * watched while the job runs, so those faults appear in events.ndjson for the visualizer, and
 * read once it ended, so the harness knows when each rank-side fault fired (the earliest rank's
 * marker counts) and what it did (the effect counts of every rank and incarnation, summed). A
 * marker that is still being written is read on the next tick. Never writes.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Fault } from '../FaultPlan.js';
import { FIRED_DIR, firedMarkerPath, isEffectsName, isFiredMarkerName, type EffectCount, type FiredMarker } from '../RankChaos.js';

/** When and where a fault was injected: by the harness, or as a rank's marker says. */
export interface Injection {
  wallMs: number;
  step: number;
  ranks: number[];
}

/** Calls onMarker once for every new marker in outputDir until the returned stop() is called. */
export function watchFiredMarkers(outputDir: string, onMarker: (m: FiredMarker) => void): () => void {
  const seen = new Set<string>();
  const dir = join(outputDir, FIRED_DIR);
  const timer = setInterval(() => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (seen.has(n) || !isFiredMarkerName(n)) continue;
      try {
        const m = JSON.parse(readFileSync(join(dir, n), 'utf8')) as FiredMarker;
        seen.add(n);
        onMarker(m);
      } catch {
        /* being written: next tick */
      }
    }
  }, 100);
  return () => clearInterval(timer);
}

/** Adds to `injected` every fault the harness did not inject but a rank's marker records. */
export function addRankInjections(outputDir: string, faults: readonly Fault[], ranksOf: (f: Fault) => number[], injected: Map<number, Injection>): void {
  for (const f of faults) {
    if (injected.has(f.index)) continue;
    for (const r of ranksOf(f)) {
      const p = firedMarkerPath(outputDir, f.index, r);
      if (!existsSync(p)) continue;
      const m = JSON.parse(readFileSync(p, 'utf8')) as FiredMarker;
      const prev = injected.get(f.index);
      if (!prev || m.wallMs < prev.wallMs) injected.set(f.index, { wallMs: m.wallMs, step: m.step, ranks: [r] });
    }
  }
}

/** The effects the ranks counted, summed per fault over every rank and incarnation. */
export function readRankEffects(outputDir: string): Map<number, number> {
  const out = new Map<number, number>();
  const dir = join(outputDir, FIRED_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!isEffectsName(n)) continue;
    try {
      const e = JSON.parse(readFileSync(join(dir, n), 'utf8')) as EffectCount;
      out.set(e.fault, (out.get(e.fault) ?? 0) + e.count);
    } catch {
      /* torn by a kill mid-write: that rank's count is lost, the others still count */
    }
  }
  return out;
}
