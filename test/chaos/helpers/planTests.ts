/**
 * Runs example fault plans (examples/chaos/*.yaml) as tap tests: each plan on loopback with the
 * synthetic workload, every guarantee asserted with the report table in the message, plus the
 * acceptance figures (crash detected within 1 s, freeze within 3.5 s, resumed within 10 s of
 * detection). Leftover processes are killed by pid even when a test fails.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../src/engine/native.js';
import { fileURLToPath } from 'node:url';
import { loadFaultPlan, FAILING, type FaultKind } from '../../../src/chaos/FaultPlan.js';
import { formatChaosReport, runChaos, type ChaosReport } from '../../../src/chaos/runChaos.js';
import { cliEntry } from '../../../src/cli/entryPath.js';
import { alive, jobPids, killAll, readEvents } from '../../helpers/jobProcesses.js';

export const examplesDir = fileURLToPath(new URL('../../../examples/chaos/', import.meta.url));
const haveTrainRuntime = existsSync(join(packageRoot(), 'dist', 'src', 'train', 'createParallelRuntime.js'));

/** Acceptance limits (ms) on time to detect, by fault kind. */
const DETECT_LIMIT_MS: Partial<Record<FaultKind, number>> = { crash: 1000, collective_crash: 1000, checkpoint_corrupt: 1000, freeze: 3500 };
const RECOVER_LIMIT_MS = 10_000;

export const figures: ChaosReport[] = [];

export function planTests(names: string[]): void {
  const cache = new Map<string, (string | undefined)[]>();
  for (const name of names) {
    const plan0 = loadFaultPlan(join(examplesDir, `${name}.yaml`));
    const skip = plan0.workload === 'train' && !haveTrainRuntime ? 'the parallel training runtime is not built' : false;
    t.test(`plan ${name}`, { skip }, async (t) => {
      const dir = t.testdir();
      t.teardown(() => {
        // whatever happened, nothing of the job survives the test
        const pids = [...jobPids(readEvents(join(dir, 'fault', 'events.ndjson'))), ...jobPids(readEvents(join(dir, 'reference', 'events.ndjson')))];
        killAll(pids.filter(alive));
      });
      const plan = loadFaultPlan(join(examplesDir, `${name}.yaml`));
      const report = await runChaos({ plan, outputDir: dir, referenceCache: cache, cliEntry: cliEntry() });
      const table = formatChaosReport(report);
      t.comment(table);
      figures.push(report);
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
      }
    });
  }
}
