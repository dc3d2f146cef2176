import t from 'tap';
import fc from 'fast-check';
import { loadJobConfig, parseJobArgs } from '../../src/config/index.js';
import { LEAVES, envName, type LeafSpec } from '../../src/config/schema.js';
import { dump } from 'js-yaml';
import { printableConfig } from '../../src/cli/commands/checkConfig.js';

// Keys tied to other keys by cross-field rules are left out: any value of the rest is valid alone.
const COUPLED = new Set([
  'stage', 'finetuning_type', 'pref_beta', 'pref_loss', 'pref_ftx', 'simpo_gamma', 'dpo_label_smoothing', 'kto_chosen_weight', 'kto_rejected_weight', 'precompute_ref_log_probs', 'max_steps', 'num_train_epochs', 'warmup_steps', 'cutoff_len',
  'sequence_parallel_size', 'deepspeed', 'cluster.step_timeout_s', 'cluster.heartbeat_interval_s', 'cluster.heartbeat_miss_limit',
  'cluster.coordinator_port', 'cluster.visualizer.port', 'gradient_policy.vanishing.threshold', 'gradient_policy.vanishing.exit_threshold',
  'gradient_policy.late_stage.vanishing_threshold', 'gradient_policy.late_stage.exit_threshold', 'lora_alpha', 'packing',
  // evaluation needs held-out data; masking needs stage sft; overwrite_output_dir clears what resume looks for
  'do_eval', 'val_size', 'eval_dataset', 'eval_strategy', 'eval_steps', 'compute_accuracy', 'eval_on_each_dataset',
  'train_on_prompt', 'mask_history', 'overwrite_output_dir', 'resume_from_checkpoint',
  // zero_stage 3 needs finetuning_type full and a stage other than rm
  'zero_stage',
]);
const FREE = LEAVES.filter((l) => !COUPLED.has(l.path));
const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/);

function valueOf(l: LeafSpec): fc.Arbitrary<unknown> {
  switch (l.kind) {
    case 'int':
      return fc.integer({ min: l.min ?? 0, max: l.max ?? 1_000_000 });
    case 'number': {
      const lo = l.above !== undefined ? l.above + 1e-9 : (l.min ?? -1e6);
      return fc.double({ min: lo, max: l.max ?? 1e6, noNaN: true, noDefaultInfinity: true });
    }
    case 'bool':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...l.values!);
    case 'list':
      return fc.array(name, { minLength: 1, maxLength: 4 });
    case 'resume':
      return fc.oneof(fc.constant(true), name.map((s) => `out/${s}`));
    case 'string':
      return l.path.endsWith('address') || l.path.endsWith('host') ? fc.constantFrom('127.0.0.1', '0.0.0.0', 'node-1') : name.map((s) => `dir/${s}`);
  }
}

const text = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
const get = (o: unknown, path: string) => path.split('.').reduce((x, k) => (x as Record<string, unknown>)[k], o);

t.test('any valid flag overrides round-trip, in either flag form, and beat the environment', async (t) => {
  const override = fc.constantFrom(...FREE).chain((l) => fc.record({ leaf: fc.constant(l), flagValue: valueOf(l), envValue: valueOf(l), inline: fc.boolean() }));
  fc.assert(
    fc.property(fc.uniqueArray(override, { selector: (o) => o.leaf.path, minLength: 1, maxLength: 8 }), (picks) => {
      const argv = picks.flatMap((p) => (p.inline ? [`--${p.leaf.path}=${text(p.flagValue)}`] : [`--${p.leaf.path}`, text(p.flagValue)]));
      const args = parseJobArgs(argv);
      if (args.problems.length) throw new Error('parse problems: ' + JSON.stringify(args.problems));
      const env = Object.fromEntries(picks.map((p) => [envName(p.leaf.path), text(p.envValue)]));
      const job = loadJobConfig({ env, overrides: args.overrides });
      for (const p of picks) {
        const got = get(job.config, p.leaf.path);
        if (JSON.stringify(got) !== JSON.stringify(p.flagValue)) throw new Error(`${p.leaf.path}: flag ${text(p.flagValue)} resolved to ${JSON.stringify(got)}`);
      }
      // the environment alone gives its own values
      const fromEnv = loadJobConfig({ env });
      for (const p of picks) {
        const got = get(fromEnv.config, p.leaf.path);
        if (JSON.stringify(got) !== JSON.stringify(p.envValue)) throw new Error(`${p.leaf.path}: env ${text(p.envValue)} resolved to ${JSON.stringify(got)}`);
      }
    }),
    { numRuns: 300, seed: 20261128 },
  );
  t.pass('300 random override sets round-tripped');
});

t.test('out-of-range numbers are always rejected, naming the key and value', async (t) => {
  const bounded = LEAVES.filter((l) => (l.kind === 'int' || l.kind === 'number') && (l.min !== undefined || l.above !== undefined));
  fc.assert(
    fc.property(fc.constantFrom(...bounded), fc.double({ min: 1e-6, max: 1e6, noNaN: true }), (l, d) => {
      const lo = l.above ?? l.min!;
      const bad = l.kind === 'int' ? Math.floor(lo) - Math.max(1, Math.ceil(d)) : lo - d;
      if (l.sentinel !== undefined && bad === l.sentinel) return;
      try {
        loadJobConfig({ env: {}, overrides: [{ key: l.path, value: String(bad), flag: `--${l.path}` }] });
      } catch (e) {
        const ps = (e as { problems?: { key?: string; value?: unknown }[] }).problems ?? [];
        if (ps.some((p) => p.key === l.path && p.value === String(bad))) return;
        throw e;
      }
      throw new Error(`${l.path}=${bad} was accepted`);
    }),
    { numRuns: 300, seed: 7 },
  );
  t.pass('300 out-of-range values rejected');
});

t.test('the printed YAML of any resolved config (examples plus random flags) loads back to the same config', async (t) => {
  const examples = [
    'examples/tiny_pt.yaml',
    'examples/train_lora/llama3_lora_sft_ulysses.yaml',
    'examples/train_lora/llama3_lora_dpo_ulysses.yaml',
    'examples/train_full/qwen2_full_dpo_ulysses.yaml',
    'examples/train_full/qwen2_5_full_sft_ulysses.yaml',
  ];
  const override = fc.constantFrom(...FREE).chain((l) => fc.record({ leaf: fc.constant(l), v: valueOf(l) }));
  fc.assert(
    fc.property(fc.constantFrom(...examples), fc.uniqueArray(override, { selector: (o) => o.leaf.path, maxLength: 6 }), (file, picks) => {
      const overrides = picks.map((p) => ({ key: p.leaf.path, value: text(p.v), flag: `--${p.leaf.path}` }));
      let first;
      try {
        first = loadJobConfig({ configPath: file, env: {}, overrides });
      } catch {
        return; // e.g. a LoRA key given to a full fine-tuning example: covered elsewhere
      }
      const printed = dump(printableConfig(first.config));
      const again = loadJobConfig({ configPath: 'printed.yaml', configText: printed, env: {} });
      if (JSON.stringify(again.config) !== JSON.stringify(first.config)) throw new Error(`${file}: round trip differs\n${printed}`);
      // only the DeepSpeed JSON's own engine keys may be reported again
      const own = again.ignored.filter((i) => !i.key.startsWith('deepspeed.'));
      if (own.length) throw new Error('the printed config has ignored keys: ' + own.map((i) => i.key).join(', '));
    }),
    { numRuns: 100, seed: 42 },
  );
  t.pass('100 printed configs loaded back unchanged');
});
