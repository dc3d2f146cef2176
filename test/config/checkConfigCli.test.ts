import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

// End to end through the built CLI (npm test builds first with scripts/setup.sh).
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/config/fixtures');
const built = existsSync(join(root, 'dist/src/cli/commands/checkConfig.js'));
// Every example job: examples/*.yaml and examples/train_*/*.yaml (chaos plans are not jobs).
const exampleJobs = [
  ...readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`),
  ...readdirSync(join(root, 'examples'))
    .filter((d) => d.startsWith('train_'))
    .flatMap((d) => readdirSync(join(root, 'examples', d)).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${d}/${f}`)),
].sort();

function cli(args: string[], env: Record<string, string> = {}) {
  // Drop ULYSSES_* (determinism) and tap's own variables (its loader hooks and process-info
  // instrumentation must not load into the plain-JS CLI).
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ULYSSES_|TAP|_TAPJS_|NODE_OPTIONS$|TS_NODE_)/.test(k)));
  // Through sh: tap's process-info wrapper re-adds NODE_OPTIONS to every spawn, and its hooks
  // make Node load the extensionless ESM bin as CommonJS; the shell drops them again.
  const r = spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, join(root, 'bin/ulysses-actors'), 'check-config', ...args], {
    cwd: root,
    env: { ...clean, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

t.test('the CLI is built', async (t) => {
  t.ok(built, 'dist/src/cli/commands/checkConfig.js exists (run `npm run setup` first)');
});

t.test('every example config resolves; YAML output lists the ignored keys', async (t) => {
  for (const f of ['examples/tiny_pt.yaml', 'examples/train_lora/llama3_lora_sft_ulysses.yaml', 'examples/train_lora/llama3_lora_dpo_ulysses.yaml', 'examples/train_full/qwen2_full_dpo_ulysses.yaml', 'examples/train_full/qwen2_5_full_sft_ulysses.yaml']) {
    t.ok(exampleJobs.includes(f), `${f} is among the example jobs found: ${exampleJobs.join(', ')}`);
  }
  for (const f of exampleJobs) {
    const r = cli([f, '--nodes', 'examples/hosts.txt']);
    t.equal(r.code, 0, `${f} exits 0: ${r.err}`);
    t.match(r.out, /^stage: (sft|dpo|pt|rm|kto)$/m);
    t.match(r.out, /world: 4 ranks/);
  }
  const r = cli(['examples/train_lora/llama3_lora_sft_ulysses.yaml']);
  t.match(r.out, /# ignored \(no effect here\):\n#   trust_remote_code: /);
  t.match(r.out, /#   ddp_timeout: collective timeouts are set by cluster\.collective_timeout_s/);
});

t.test('--json prints one object with env and flags applied and sp from DeepSpeed', async (t) => {
  const r = cli(['examples/train_full/qwen2_full_dpo_ulysses.yaml', '--json', '--seed', '11', '--adjust-lr', '2', '--cluster.visualizer.enabled=false'], { ULYSSES_SEED: '10', ULYSSES_SAVE_STEPS: '7' });
  t.equal(r.code, 0, r.err);
  const o = JSON.parse(r.out.trim().split('\n').pop()!);
  t.equal(o.config.seed, 11, 'flag over env');
  t.equal(o.config.save_steps, 7, 'env over file');
  t.equal(o.config.learning_rate, 1e-5, '5e-6 x --adjust-lr 2');
  t.equal(o.config.sequence_parallel_size, 2, 'from examples/deepspeed_sp2.json');
  t.equal(o.config.cluster.visualizer.enabled, false);
  t.ok(o.ignored.some((i: { key: string }) => i.key === 'do_train'));
});

t.test('bad input exits 2 and prints every problem (config, env, flags, hostfile)', async (t) => {
  const r = cli([join(fixtures, 'bad.yaml'), '--lerning_rate', '1', '--nodes', join(fixtures, 'hosts_bad.txt')], { ULYSSES_SEED: 'abc' });
  t.equal(r.code, 2);
  t.equal(r.out, '', 'nothing on stdout');
  const lines = r.err.split('\n').filter((l) => l.startsWith('  - '));
  t.equal(lines.length, 7 + 1 + 1 + 5, 'seven file problems, one env, one flag, five hostfile lines:\n' + r.err);
  t.match(r.err, /bad\.yaml:3: stage: is not one of the supported values \(got "ppo"\); use one of pt, sft, dpo/);
  t.match(r.err, /learning_rat: unknown key; did you mean learning_rate\?/);
  t.match(r.err, /--lerning_rate: unknown option; did you mean --learning_rate\?/);
  t.match(r.err, /env ULYSSES_SEED: seed: must be a whole number/);
  t.match(r.err, /hosts_bad\.txt:3: duplicate host/);
});

t.test('a missing config file and a bad flag value exit 2', async (t) => {
  t.equal(cli(['no/such/job.yaml']).code, 2);
  const r = cli(['--bf16', 'maybe']);
  t.equal(r.code, 2);
  t.match(r.err, /bf16: must be true or false \(got "maybe"\)/);
  t.equal(cli([]).code, 0, 'no config: the embedded default job');
});

t.test('the model family and position encoding are printed; a rope the engine cannot compute is refused by key', async (t) => {
  const r = cli(['examples/llama3_1_mini_lora_sft_long.yaml']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^# model: llama, head_dim 32, rope llama3 x8 from 256/m);
  const j = cli(['examples/qwen3_mini_pt_long.yaml', '--json']);
  t.equal(j.code, 0, j.err);
  t.match(JSON.parse(j.out.trim().split('\n').pop()!).model, /^qwen3 \(q\/k norm\)/);
  const dir = t.testdir({
    'config.json': JSON.stringify({
      model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2,
      rope_scaling: { rope_type: 'longrope', factor: 4 },
    }),
  });
  const bad = cli(['examples/tiny_pt.yaml', '--model_name_or_path', dir]);
  t.equal(bad.code, 2, 'exit 2 before anything starts');
  t.match(bad.err, /rope_scaling/, `names the key: ${bad.err}`);
});
