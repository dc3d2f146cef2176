// Fault plans: every example parses; bad plans are refused with every problem named by its
// field; the seeded per-step draw is deterministic and has the asked-for rate.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FaultPlanError, keyedUniform, loadFaultPlan, parseFaultPlan, probabilityStep, FAULT_KINDS } from '../../src/chaos/FaultPlan.js';
import { examplesDir, fixturesDir } from './helpers/planTests.js';

t.test('every example plan parses, runs the training workload, and together they cover every fault kind', async (t) => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));
  const kinds = new Set<string>();
  for (const f of files) {
    const plan = loadFaultPlan(join(examplesDir, f));
    t.equal(plan.name, f.replace(/\.yaml$/, ''), `${f}: name matches the file`);
    t.equal(plan.workload, 'train', `${f}: runs the real training loop`);
    for (const x of plan.faults) kinds.add(x.kind);
  }
  t.same(FAULT_KINDS.filter((k) => !kinds.has(k)), [], 'no fault kind without an example');
  t.ok(files.includes('train_combined.yaml'));
});

t.test('every harness fixture plan parses', async (t) => {
  for (const f of readdirSync(fixturesDir).filter((f) => f.endsWith('.yaml'))) {
    t.equal(loadFaultPlan(join(fixturesDir, f)).name, f.replace(/\.yaml$/, ''), f);
  }
});

t.test('a bad plan lists every problem, each naming its field', async (t) => {
  const text = `
name: bad
ranks: 2
colour: red
faults:
  - kind: crash
  - kind: meltdown
    at_step: 3
  - kind: freeze
    at_step: 0
    target: { rank: 5 }
  - kind: slow
    at_step: 2
    at_time_s: 1
    delay_ms: -4
  - kind: net_drop
    p: 1.5
    side: moon
  - kind: restart_storm
`;
  const err = t.throws(() => parseFaultPlan(text, 'bad.yaml')) as FaultPlanError;
  t.ok(err instanceof FaultPlanError);
  t.equal(err.code, 'ERR_CHAOS_PLAN');
  const want = [
    /^colour: unknown key/,
    /^faults\[0\]: needs a trigger/,
    /^faults\[1\]\.kind: must be one of/,
    /^faults\[2\]\.at_step: must be a whole number >= 1, got 0/,
    /^faults\[2\]\.target\.rank: 5 is outside the world of 2 ranks/,
    /^faults\[3\]: give one trigger/,
    /^faults\[3\]\.delay_ms: must be a number >= 0/,
    /^faults\[4\]\.p: must be a number >= 0 <= 1, got 1.5/,
    /^faults\[4\]\.side: must be rank or coordinator/,
    /^expect: a plan with restart_storm must say `expect: give_up`/,
  ];
  for (const w of want) t.ok(err.problems.some((p) => w.test(p)), `reported: ${w} (got:\n${err.problems.join('\n')})`);
  t.match(err.message, /^bad\.yaml is invalid:/);
});

t.test('not YAML, or not a mapping, is a clear error', async (t) => {
  t.throws(() => parseFaultPlan('faults: [', 'x.yaml'), { message: /x\.yaml is invalid:[\s\S]*not valid YAML/ });
  t.throws(() => parseFaultPlan('- 1\n- 2\n', 'y.yaml'), { message: /must be a mapping with a `faults` list/ });
});

t.test('the per-step draw is seeded, deterministic and close to its probability', async (t) => {
  t.equal(keyedUniform(7, 1, 2, 3), keyedUniform(7, 1, 2, 3));
  t.not(keyedUniform(7, 1, 2, 3), keyedUniform(8, 1, 2, 3));
  let hits = 0;
  const n = 20000;
  for (let s = 1; s <= n; s++) if (keyedUniform(42, 0, 1, s) < 0.1) hits++;
  const rate = hits / n;
  t.ok(Math.abs(rate - 0.1) < 0.01, `hit rate ${rate} within 0.01 of 0.1 (diff ${Math.abs(rate - 0.1).toFixed(4)})`);
  const plan = parseFaultPlan('name: p\nseed: 3\nranks: 2\nfaults:\n  - kind: crash\n    probability: 0.2\n');
  const s1 = probabilityStep(3, plan.faults[0]!, 1, 100);
  t.equal(s1, probabilityStep(3, plan.faults[0]!, 1, 100), 'same plan, same step');
  t.ok(s1 !== null && s1 >= 1);
});
