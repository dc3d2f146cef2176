import t from 'tap';
import { problemsOf } from './helpers/problemsOf.js';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadJobConfig, keyLine } from '../../src/config/index.js';
import { LEAVES } from '../../src/config/schema.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (name: string) => join(fixtures, name);


function lookup(obj: unknown, path: string): unknown {
  return path.split('.').reduce((o, k) => (o as Record<string, unknown>)[k], obj);
}

t.test('no file, no env, no flags gives the schema defaults (with derived lora_alpha and packing)', async (t) => {
  const job = loadJobConfig({ env: {} });
  for (const l of LEAVES) {
    if (l.path === 'lora_alpha' || l.path === 'packing') continue;
    t.same(lookup(job.config, l.path), l.default, `${l.path} defaults to ${JSON.stringify(l.default)}`);
  }
  t.equal(job.config.lora_alpha, 2 * job.config.lora_rank, 'lora_alpha defaults to 2 * lora_rank');
  t.equal(job.config.packing, false, 'packing defaults to false for sft');
  t.same(job.policy, defaultPolicyConfig, 'the gradient policy defaults are defaultPolicyConfig');
  t.same(job.ignored, []);
  t.equal(job.sources.seed, 'default');
});

t.test('precedence: defaults < file < env < flags, each layer naming its source', async (t) => {
  const text = 'learning_rate: 1.0e-4\nseed: 7\nlogging_steps: 5\nsave_steps: 20\n';
  const job = loadJobConfig({
    configPath: 'job.yaml',
    configText: text,
    env: { ULYSSES_SEED: '8', ULYSSES_LOGGING_STEPS: '6', ULYSSES_CLUSTER_HEARTBEAT_INTERVAL_S: '0.5', ULYSSES_THREADS: '2' },
    overrides: [{ key: 'logging_steps', value: '9', flag: '--logging_steps' }],
  });
  t.equal(job.config.save_steps, 20, 'file over default');
  t.equal(job.config.learning_rate, 1e-4, 'file value kept when nothing overrides it');
  t.equal(job.config.seed, 8, 'env over file');
  t.equal(job.config.logging_steps, 9, 'flag over env over file');
  t.equal(job.config.cluster.heartbeat_interval_s, 0.5, 'nested key from env');
  t.equal(job.config.max_steps, -1, 'default kept');
  t.equal(job.sources.save_steps, 'job.yaml:4');
  t.equal(job.sources.seed, 'env ULYSSES_SEED');
  t.equal(job.sources.logging_steps, 'flag --logging_steps');
});

t.test('LLaMA-Factory keys with no effect are listed as ignored with a reason, once each', async (t) => {
  const text = 'do_train: true\ntrust_remote_code: true\nddp_timeout: 180000000\nreport_to: none\nflash_attn: auto\ndataloader_num_workers: 4\nlearning_rate: 1.0e-4\n';
  const job = loadJobConfig({ configPath: 'job.yaml', configText: text, env: {} });
  t.same(job.ignored.map((i) => i.key), ['do_train', 'trust_remote_code', 'ddp_timeout', 'report_to', 'flash_attn', 'dataloader_num_workers']);
  for (const i of job.ignored) t.ok(i.reason.length > 10, `${i.key} has a reason: ${i.reason}`);
  t.equal(job.ignored[2]!.source, 'job.yaml:3');
});

t.test('recognized but unsupported keys are refused with the reason, unless null', async (t) => {
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'ref_model_adapters: saves/lora\nref_model: other\n', env: {} }));
  t.same(ps.map((p) => p.key), ['ref_model_adapters', 'ref_model']);
  t.match(ps[0]!.message, /not supported here: a separate DPO reference model/);
  const ok = loadJobConfig({ configPath: 'j.yaml', configText: 'ref_model_adapters: null\n', env: {} });
  t.same(ok.ignored.map((i) => i.key), ['ref_model_adapters']);
});

t.test('unknown keys are errors with a did-you-mean, also inside sections', async (t) => {
  const text = 'learning_rat: 1.0e-4\nnum_train_epoch: 2\ncluster:\n  heartbeat_intervl_s: 2\nzzzz_qqqq: 1\nheartbeat_miss_limit: 4\n';
  const ps = problemsOf(() => loadJobConfig({ configPath: 'job.yaml', configText: text, env: {} }));
  const byKey = new Map(ps.map((p) => [p.key, p]));
  t.match(byKey.get('learning_rat')?.fix, /did you mean learning_rate\?/);
  t.equal(byKey.get('learning_rat')?.source, 'job.yaml:1');
  t.match(byKey.get('num_train_epoch')?.fix, /did you mean num_train_epochs\?/);
  t.match(byKey.get('cluster.heartbeat_intervl_s')?.fix, /did you mean cluster\.heartbeat_interval_s\?/);
  t.equal(byKey.get('cluster.heartbeat_intervl_s')?.source, 'job.yaml:4');
  t.notMatch(byKey.get('zzzz_qqqq')?.fix ?? '', /did you mean/, 'no wild guess for a far-off key');
  t.match(byKey.get('heartbeat_miss_limit')?.fix, /cluster > heartbeat_miss_limit/, 'a nested key at the top level points at its section');
  t.equal(ps.length, 5, 'exactly the five bad keys: ' + ps.map((p) => p.key).join(', '));
});

t.test('every problem of a bad file is listed (type, range, enum, unknown, cross-field)', async (t) => {
  const ps = problemsOf(() => loadJobConfig({ configPath: fx('bad.yaml'), env: { ULYSSES_SEED: '-3' }, overrides: [{ key: 'save_steps', value: 'often', flag: '--save_steps' }] }));
  const keys = ps.map((p) => p.key).sort();
  t.same(keys, ['cluster.heartbeat_intervl_s', 'cluster.max_restarts', 'cutoff_len', 'learning_rat', 'lora_rank', 'save_steps', 'seed', 'stage', 'warmup_ratio'].sort(), 'all nine problems');
  const stage = ps.find((p) => p.key === 'stage')!;
  t.equal(stage.value, 'ppo');
  t.match(stage.fix, /pt, sft, dpo/);
  t.equal(stage.source, `${fx('bad.yaml')}:3`);
  t.match(ps.find((p) => p.key === 'lora_rank')!.message, /finetuning_type: lora/, 'lora key without lora');
  t.equal(ps.find((p) => p.key === 'seed')!.source, 'env ULYSSES_SEED');
  t.equal(ps.find((p) => p.key === 'save_steps')!.source, 'flag --save_steps');
  for (const p of ps) t.ok(p.fix && p.fix.length > 0, `${p.key} has a fix`);
  // The formatted error carries every problem too.
  try {
    loadJobConfig({ configPath: fx('bad.yaml'), env: {} });
  } catch (e) {
    t.match((e as Error).message, /7 problems/);
  }
});

t.test('cross-field checks: training length, dpo-only keys, sp divides the world, hysteresis', async (t) => {
  let ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'num_train_epochs: 0\npref_beta: 0.2\nsequence_parallel_size: 3\n', env: {}, worldSize: 4 }));
  t.same(ps.map((p) => p.key).sort(), ['max_steps', 'pref_beta', 'sequence_parallel_size']);
  t.match(ps.find((p) => p.key === 'sequence_parallel_size')!.fix, /1, 2, 4/);
  t.doesNotThrow(() => loadJobConfig({ configPath: 'j.yaml', configText: 'sequence_parallel_size: 2\n', env: {}, worldSize: 4 }));
  ps = problemsOf(() =>
    loadJobConfig({ configPath: 'j.yaml', configText: 'gradient_policy:\n  vanishing:\n    threshold: 1.0e-3\n    exit_threshold: 1.0e-4\ncluster:\n  step_timeout_s: 2\n', env: {} }),
  );
  t.same(ps.map((p) => p.key).sort(), ['cluster.step_timeout_s', 'gradient_policy.vanishing.exit_threshold']);
});

t.test('the gradient_policy section maps onto PolicyConfig', async (t) => {
  const text = 'gradient_policy:\n  enabled: false\n  vanishing:\n    lr_boost: 2\n    exit_threshold: 3.0e-4\n  late_stage:\n    start_fraction: 0.5\n  explode:\n    clip_norm: 0.25\n  centralize: none\n  nonfinite_patience: 5\n';
  const job = loadJobConfig({ configPath: 'j.yaml', configText: text, env: {} });
  t.same(job.policy, {
    ...defaultPolicyConfig,
    enabled: false,
    vanishing: { ...defaultPolicyConfig.vanishing, lrBoost: 2, exitThreshold: 3e-4 },
    lateStage: { ...defaultPolicyConfig.lateStage, startFraction: 0.5 },
    explode: { ...defaultPolicyConfig.explode, clipNorm: 0.25 },
    centralize: 'none',
    nonfinitePatience: 5,
  });
});

t.test('the DeepSpeed JSON fills keys the job does not set, and the job wins on sequence_parallel_size', async (t) => {
  const job = loadJobConfig({ configPath: fx('job_ds.yaml'), env: {} });
  t.equal(job.config.sequence_parallel_size, 4, 'sequence_parallel_size from the JSON');
  t.equal(job.config.per_device_train_batch_size, 2, 'train_micro_batch_size_per_gpu honoured');
  t.equal(job.config.max_grad_norm, 0.5, 'gradient_clipping honoured');
  t.equal(job.config.bf16, true, 'bf16.enabled honoured');
  t.equal(job.config.gradient_accumulation_steps, 1, '"auto" leaves the job value');
  t.equal(job.sources.sequence_parallel_size, 'deepspeed ds_sp4.json');
  t.ok(job.ignored.some((i) => i.key === 'deepspeed.zero_optimization'), 'zero_optimization listed as ignored');
  const own = loadJobConfig({ configPath: fx('job_ds.yaml'), env: {}, overrides: [{ key: 'sequence_parallel_size', value: '2', flag: '--sequence_parallel_size' }] });
  t.equal(own.config.sequence_parallel_size, 2, 'the job value wins over the JSON');
  const ps = problemsOf(() => loadJobConfig({ configPath: fx('job_ds.yaml'), env: {}, worldSize: 6 }));
  t.same(ps.map((p) => p.key), ['sequence_parallel_size'], 'sp=4 from the JSON must divide world 6');
});

t.test('DeepSpeed JSON conflicts and broken files are problems', async (t) => {
  const ps = problemsOf(() => loadJobConfig({ configPath: fx('job_ds_conflict.yaml'), env: {}, worldSize: 2 }));
  t.same(ps.map((p) => p.key).sort(), ['deepspeed train_batch_size', 'per_device_train_batch_size'].sort());
  t.match(ps.find((p) => p.key === 'per_device_train_batch_size')!.fix, /"auto"/);
  const broken = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${fx('ds_broken.json')}\n`, env: {} }));
  t.equal(broken.length, 1);
  t.match(broken[0]!.message, /not valid JSON/);
  const missing = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'deepspeed: no/such/ds.json\n', env: {} }));
  t.match(missing[0]!.message, /not found/);
});

t.test('YAML syntax errors name the line; a missing file is one problem', async (t) => {
  const ps = problemsOf(() => loadJobConfig({ configPath: fx('syntax.yaml'), env: {} }));
  t.equal(ps.length, 1);
  t.match(ps[0]!.source, /syntax\.yaml:\d+$/);
  t.match(ps[0]!.message, /YAML syntax error/);
  const missing = problemsOf(() => loadJobConfig({ configPath: fx('nope.yaml'), env: {} }));
  t.match(missing[0]!.message, /ENOENT/);
  const list = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: '- a\n- b\n', env: {} }));
  t.match(list[0]!.message, /mapping/);
});

t.test('--adjust-lr multiplies learning_rate; values coerce strictly', async (t) => {
  const job = loadJobConfig({ configPath: 'j.yaml', configText: 'learning_rate: 2.0e-4\nlora_target: q_proj, v_proj\ndataset: [a, b]\nresume_from_checkpoint: true\n', env: {}, adjustLr: 0.5 });
  t.equal(job.config.learning_rate, 1e-4);
  t.equal(job.lrAdjust, 0.5);
  t.same(job.config.lora_target, ['q_proj', 'v_proj'], 'comma list');
  t.same(job.config.dataset, ['a', 'b'], 'YAML list');
  t.equal(job.config.resume_from_checkpoint, true);
  const ps = problemsOf(() => loadJobConfig({ env: { ULYSSES_MAX_STEPS: '10.5', ULYSSES_BF16: 'maybe', ULYSSES_LEARNING_RATE: '1e-4x' } }));
  t.same(ps.map((p) => p.key).sort(), ['bf16', 'learning_rate', 'max_steps']);
  t.equal(loadJobConfig({ env: { ULYSSES_BF16: 'yes', ULYSSES_MAX_SAMPLES: 'null' } }).config.bf16, true);
});

t.test('keyLine finds nested keys in block YAML', async (t) => {
  const lines = 'seed: 1\ncluster:\n  visualizer:\n    port: 8\n  port_x: 1\nport: 3\n'.split('\n');
  t.equal(keyLine(lines, 'seed'), 1);
  t.equal(keyLine(lines, 'cluster.visualizer.port'), 4);
  t.equal(keyLine(lines, 'port'), 6, 'a top-level key is never matched inside a section');
  t.equal(keyLine(lines, 'cluster.nope'), undefined);
});
