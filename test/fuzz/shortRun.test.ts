import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TARGETS } from '../../fuzz/targets.js';

// A short fuzzing run of every target through `npm run fuzz`'s runner (the compiled one: the
// fuzzer instruments dist/), a few seconds each: the fuzzer must start, get coverage feedback
// from the instrumented parsers and find nothing. New inputs and findings go to a temporary
// folder, never into the repository's corpus.
const root = join(import.meta.dirname, '..', '..');
const SECONDS = 4 * TARGETS.length;

interface Result {
  target: string;
  executions: number;
  coverage: number;
  findings: string[];
  exitCode: number | null;
}

t.test('every target fuzzes for a few seconds without a finding', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ulysses-fuzz-test-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const r = spawnSync(
    process.execPath,
    [join(root, 'dist', 'fuzz', 'runFuzz.js'), '--seconds', String(SECONDS), '--json', '--corpus-out', join(work, 'corpus', '<target>'), '--crash-dir', join(work, 'crashes', '<target>')],
    { encoding: 'utf8', timeout: 600_000 },
  );
  const lines = r.stdout.trim().split('\n');
  t.equal(r.status, 0, `runner exit status (stderr tail:\n${r.stderr.split('\n').slice(-30).join('\n')})`);
  const results = JSON.parse(lines[lines.length - 1] ?? '[]') as Result[];
  t.same(results.map((x) => x.target), TARGETS.map((x) => x.name), 'every target ran, in order');
  for (const x of results) {
    t.equal(x.exitCode, 0, `${x.target}: the fuzzer exited cleanly`);
    t.same(x.findings, [], `${x.target}: no findings`);
    t.ok(x.executions >= 20, `${x.target}: ${x.executions} executions`);
    // coverage feedback works: the instrumented parser reports edges beyond a trivial few
    t.ok(x.coverage >= 15, `${x.target}: ${x.coverage} edges covered`);
  }
  t.same(readdirSync(join(work, 'crashes')).flatMap((d) => readdirSync(join(work, 'crashes', d))), [], 'no finding files written');
});
