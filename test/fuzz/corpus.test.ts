import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TARGETS } from '../../fuzz/targets.js';

// Every kept input (the seeds, what the campaigns found worth keeping, and every finding's
// input under test/fuzz/regressions/) runs through its target's checks without the fuzzer: a
// parser change that makes any of them crash, hang or break the parser's contract fails here.
const root = join(import.meta.dirname, '..', '..');

for (const target of TARGETS) {
  t.test(`${target.name}: corpus and regression inputs run clean`, async (t) => {
    const { fuzz } = (await import(`../../fuzz/targets/${target.module}.js`)) as { fuzz: (data: Buffer) => void };
    const dirs = [join(root, 'fuzz', 'corpus', target.name), join(root, 'test', 'fuzz', 'regressions', target.name)];
    const files = dirs.filter((d) => existsSync(d)).flatMap((d) => readdirSync(d).map((f) => join(d, f)));
    t.ok(files.some((f) => f.includes(`${target.name}/seed-`)), 'the target has seed inputs');
    let slowest = 0;
    let slowestFile = '';
    for (const f of files) {
      const data = readFileSync(f);
      const t0 = performance.now();
      try {
        fuzz(data);
      } catch (e) {
        t.fail(`${f}: ${(e as Error).stack ?? String(e)}`);
      }
      const ms = performance.now() - t0;
      if (ms > slowest) [slowest, slowestFile] = [ms, f];
    }
    // the fuzzer's own hang criterion (its per-input limit), not a speed requirement
    t.ok(slowest < target.timeoutMs, `slowest input ${slowestFile} took ${slowest.toFixed(0)} ms (limit ${target.timeoutMs} ms)`);
    t.pass(`${files.length} inputs`);
  });
}
