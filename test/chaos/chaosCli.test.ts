// `ulysses-actors chaos` as a user runs it: exit 2 with the field named for a bad plan or flag,
// 0 with the table when every guarantee holds, 1 when one does not.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { fixturesDir as examplesDir } from './helpers/planTests.js';

t.test('bad plans and flags exit 2 naming the field', async (t) => {
  const dir = t.testdir();
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'name: bad\nranks: 2\nfaults:\n  - kind: freeze\n    at_step: -1\n    duration_s: 0\n');
  const r = runCli(['chaos', '--plan', bad], { timeoutMs: 30_000 });
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /faults\[0\]\.at_step: must be a whole number >= 1, got -1/);
  t.match(r.stderr, /faults\[0\]\.duration_s: must be a number > 0, got 0/);
  const none = runCli(['chaos'], { timeoutMs: 30_000 });
  t.equal(none.status, 2);
  t.match(none.stderr, /--plan: required/);
  const wl = runCli(['chaos', '--plan', join(examplesDir, 'crash.yaml'), '--workload', 'nope'], { timeoutMs: 30_000 });
  t.equal(wl.status, 2);
  t.match(wl.stderr, /--workload: unknown workload 'nope'/);
});

t.test('a plan whose guarantees hold exits 0 and prints the table', async (t) => {
  const dir = t.testdir();
  const r = runCli(['chaos', '--plan', join(examplesDir, 'crash.yaml'), '--output-dir', dir, '--max_steps', '12', '--json'], { timeoutMs: 120_000 });
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /0\s+crash\s+rank 1\s+7\s+\d+\.\d+ s\s+agent/);
  t.match(r.stdout, /PASS\s+final weights equal the fault-free run/);
  t.match(r.stdout, /all guarantees hold/);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.equal(last.ok, true);
  t.equal(last.result.lastStep, 12, 'the --max_steps override reached the job');
});

t.test('a plan whose guarantee fails exits 1', async (t) => {
  const dir = t.testdir();
  const plan = join(dir, 'never.yaml');
  // the write fault is armed after the last step: it never fires, so its guarantee cannot be shown
  writeFileSync(plan, 'name: never\nworkload: synthetic\nranks: 2\njob: { max_steps: 8 }\nfaults:\n  - kind: checkpoint_write_fail\n    at_step: 100\n');
  const r = runCli(['chaos', '--plan', plan, '--output-dir', join(dir, 'out')], { timeoutMs: 120_000 });
  t.equal(r.status, 1, r.stdout + r.stderr);
  t.match(r.stdout, /FAIL\s+torn checkpoint write ignored: the write fault did not fire/);
  t.match(r.stdout, /GUARANTEES VIOLATED/);
});
