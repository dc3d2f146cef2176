// `up --device cuda` and a job YAML with `device: cuda`, on a machine where the addon cannot run
// CUDA (no GPU visible, CUDA not compiled in, or no CUDA model bound): exit 2 with the cause and
// the fix before anything starts (no output folder, no process). Through the built CLI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceFacts, deviceProblem } from '../../src/engine/device/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ua-up-device-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function up(args: string[]) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ULYSSES_|TAP|_TAPJS_|NODE_OPTIONS$|TS_NODE_)/.test(k)));
  // through sh: tap's wrapper re-adds NODE_OPTIONS to every spawn; the shell drops it again
  return spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, join(root, 'bin/ulysses-actors'), 'up', ...args], {
    cwd: dir,
    env: clean,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

const problem = deviceProblem('cuda', deviceFacts({}));

t.test('this machine cannot run device: cuda (the premise of the test)', async (t) => {
  t.ok(problem, `the addon says: ${problem?.message}`);
});

t.test('up --device cuda: exit 2 naming the device key, the cause and the fix; nothing starts', async (t) => {
  const out = join(dir, 'flag-run');
  const r = up(['--device', 'cuda', '--output_dir', out]);
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /invalid configuration: 1 problem/);
  t.match(r.stderr, /- device: .*\(got "cuda"\); use device: cpu/);
  t.ok(r.stderr.includes(problem!.message), 'the addon\'s own cause');
  t.notOk(existsSync(out), 'no output folder was made');
});

t.test('a job YAML with device: cuda: the same refusal', async (t) => {
  const out = join(dir, 'yaml-run');
  const job = join(dir, 'job.yaml');
  writeFileSync(job, `device: cuda\noutput_dir: ${out}\n`);
  const r = up([job]);
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /- device: .*use device: cpu/);
  t.notOk(existsSync(out));
});

t.test('device: gpu is refused by the schema with the supported values', async (t) => {
  const r = up(['--device', 'gpu', '--output_dir', join(dir, 'bad')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /device.*use one of cpu, cuda/);
});
