/**
 * The chaos report as the `chaos` command prints it: one row per fault (step, time to detect and
 * by whom, time to recover and where it went, steps redone, the step resumed from, what it did),
 * then every guarantee with PASS or FAIL. Pure.
 */
import type { ChaosReport, FaultOutcome } from './runChaos.js';

/** The report as a table (the `chaos` command prints it). */
export function formatChaosReport(r: ChaosReport): string {
  const ms = (v: number | null) => (v === null ? '-' : `${(v / 1000).toFixed(2)} s`);
  const split = (p: FaultOutcome['phases']) => (p ? [p.stopMs, p.joinMs, p.initMs].map((v) => (v / 1000).toFixed(2)).join('+') : '-');
  const rows = [
    ['#', 'fault', 'target', 'step', 'detected', 'by', 'recovered', 'stop+join+init s', 'redone', 'resumed', 'effects'],
    ...r.faults.map((f) => [String(f.index), f.kind, f.target, f.step === null ? '-' : String(f.step), ms(f.detectMs), f.detectedBy ?? '-', ms(f.recoverMs), split(f.phases), f.stepsRedone === null ? '-' : String(f.stepsRedone), f.resumedFrom === null ? (f.note || '-') : `step ${f.resumedFrom}`, `${f.effects} ${f.effectsOf}`]),
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  const lines = [`plan ${r.plan}: ${r.workload}, ${r.world} ranks, ${(r.wallMs / 1000).toFixed(1)} s`, line(rows[0]!), ...rows.slice(1).map(line), ''];
  for (const g of r.guarantees) lines.push(`${g.ok ? 'PASS' : 'FAIL'}  ${g.name}: ${g.detail}`);
  lines.push(r.ok ? 'all guarantees hold' : 'GUARANTEES VIOLATED');
  return lines.join('\n');
}
