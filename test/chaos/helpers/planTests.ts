/**
 * Runs fault plans as tap tests: the examples (examples/chaos/*.yaml, the real training loop on
 * the tiny model) and the harness fixtures (test/chaos/fixtures/plans, the fast synthetic
 * workload); each plan on loopback, every guarantee asserted with the report table in the
 * message, plus the acceptance figures per fault: crash (and a crash in a collective) detected
 * within 1 s, a SIGSTOP freeze within 3.5 s, training resumed within 10 s of detection, the
 * fault landed while the job was still training (a restart that only finds the job done proves
 * nothing about recovery), and no more steps redone than the checkpoint interval allows. A
 * summary table of the figures is printed at the end of the file. Leftover processes are killed
 * by pid even when a test fails. A plan this machine cannot run (a tmpfs mount refused without
 * root) is skipped with the reason. Must never loosen a limit to make a slow machine pass: the
 * limits are the acceptance figures.
 */
import t from 'tap';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFaultPlan, FAILING, type FaultKind } from '../../../src/chaos/FaultPlan.js';
import { ChaosUnavailable, formatChaosReport, runChaos, type ChaosReport, type ReferenceRun } from '../../../src/chaos/runChaos/index.js';
import { cliEntry } from '../../../src/util/packageRoot.js';
import { alive, jobPids, killAll, readEvents } from '../../helpers/jobProcesses.js';

export const examplesDir = fileURLToPath(new URL('../../../examples/chaos/', import.meta.url));
export const fixturesDir = fileURLToPath(new URL('../fixtures/plans/', import.meta.url));

/** Acceptance limits (ms) on time to detect, by fault kind (checkpoint_corrupt with at_step kills like a crash). */
export const DETECT_LIMIT_MS: Partial<Record<FaultKind, number>> = { crash: 1000, collective_crash: 1000, checkpoint_corrupt: 1000, freeze: 3500 };
/** Acceptance limit (ms): training resumes (the first step after the restart) within this of detection. */
export const RECOVER_LIMIT_MS = 10_000;

export const figures: ChaosReport[] = [];

/** One line per fault: the acceptance figures of every plan run in this file. */
export function figuresTable(reports: ChaosReport[]): string {
  const s = (v: number | null) => (v === null ? '-' : (v / 1000).toFixed(2));
  const split = (p: ChaosReport['faults'][number]['phases']) => (p ? [p.stopMs, p.joinMs, p.initMs].map((v) => s(v)).join('+') : '-');
  const rows = [['plan', 'ranks', '#', 'fault', 'step', 'detect s', 'by', 'recover s', 'stop+join+init s', 'redone', 'resumed', 'ok', 'wall s']];
  for (const r of reports) {
    for (const f of r.faults) {
      rows.push([r.plan, String(r.world), String(f.index), f.kind, f.step === null ? '-' : String(f.step), s(f.detectMs), f.detectedBy || '-', s(f.recoverMs), split(f.phases), f.stepsRedone === null ? '-' : String(f.stepsRedone), f.resumedFrom === null ? f.note || '-' : String(f.resumedFrom), r.ok ? 'yes' : 'NO', (r.wallMs / 1000).toFixed(1)]);
    }
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
}

export function planTests(names: string[], dir = examplesDir): void {
  const cache = new Map<string, ReferenceRun>();
  const mine: ChaosReport[] = [];
  t.teardown(() => {
    if (mine.length) console.log(`# acceptance figures (${mine.length} plan(s))\n${figuresTable(mine).replace(/^/gm, '# ')}`);
  });
  for (const name of names) {
    t.test(`plan ${name}`, async (t) => {
      const out = t.testdir();
      t.teardown(() => {
        // whatever happened, nothing of the job survives the test
        const pids = [...jobPids(readEvents(join(out, 'fault', 'events.ndjson'))), ...jobPids(readEvents(join(out, 'reference', 'events.ndjson')))];
        killAll(pids.filter(alive));
      });
      const plan = loadFaultPlan(join(dir, `${name}.yaml`));
      let report: ChaosReport;
      try {
        report = await runChaos({ plan, outputDir: out, referenceCache: cache, cliEntry: cliEntry() });
      } catch (e) {
        if (!(e instanceof ChaosUnavailable)) throw e;
        t.skip(`plan ${name} cannot run on this machine: ${e.message}`);
        return;
      }
      const table = formatChaosReport(report);
      t.comment(table);
      figures.push(report);
      mine.push(report);
      for (const g of report.guarantees) t.ok(g.ok, `${g.name}: ${g.detail}`);
      t.equal(report.ok, true, `every guarantee holds\n${table}`);
      t.same(report.leftovers, [], 'no process of the job left');
      for (const f of report.faults) {
        // give_up: no recovery to time; absorb: the policy handles the fault without a failure
        if (!FAILING.has(f.kind as FaultKind) || plan.expect !== 'recover') continue;
        if (!f.fired && f.kind === 'checkpoint_corrupt') continue; // corrupts at the next restart, timed by the fault that caused it
        t.ok(f.fired, `fault ${f.index} (${f.kind}) fired`);
        const limit = DETECT_LIMIT_MS[f.kind as FaultKind];
        if (limit !== undefined) t.ok(f.detectMs !== null && f.detectMs <= limit, `${f.kind} detected within ${limit} ms: measured ${f.detectMs} ms`);
        t.ok(f.recoverMs !== null && f.recoverMs <= RECOVER_LIMIT_MS, `${f.kind}: training resumed within ${RECOVER_LIMIT_MS} ms of detection: measured ${f.recoverMs} ms`);
        t.not(f.note, 'resumed at the end', `${f.kind}: detected while the job was still training (resumed from step ${f.resumedFrom})`);
        // nothing lost beyond the checkpoint interval, one more interval per damaged checkpoint
        const maxRedone = report.saveSteps * (1 + report.corruptions.length);
        if (f.stepsRedone !== null) t.ok(f.stepsRedone <= maxRedone, `${f.kind}: ${f.stepsRedone} step(s) redone, at most ${maxRedone} (save_steps ${report.saveSteps}, ${report.corruptions.length} corrupted checkpoint(s))`);
      }
    });
  }
}
