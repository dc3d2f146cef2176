/**
 * `ulysses-actors check-config job.yaml [--nodes hosts.txt] [--include S | --exclude S]
 * [--adjust-lr [X]] [--KEY VALUE ...] [--json] [--keys]`: resolves a job config exactly as `up`
 * would (defaults < file < env < flags), runs up's checks before start (the model, tokenizer,
 * datasets' first rows, output_dir, hostfile hosts: ../preflight.ts) and prints the config with
 * the ignored keys and what the checks found, or throws one ConfigError listing every problem
 * (the CLI exits 2). Never starts a job or touches output_dir.
 */
import { dump } from 'js-yaml';
import { launcherKinds } from '../../actors/launchers/index.js';
import { ConfigError, LEAVES, envName, resolveJob, type JobConfig } from '../../config/index.js';
import { preflight } from '../preflight.js';

const HELP = `usage: ulysses-actors check-config [job.yaml | --config job.yaml] [options] [--KEY VALUE ...]
  --json               print one JSON object instead of YAML
  --nodes FILE         also check a hostfile (sequence_parallel_size must divide its slots)
  --include S / --exclude S   DeepSpeed host selectors (host1@host2:0,1)
  --adjust-lr [X]      multiply learning_rate by X (bare: 1.0)
  --debug              set debug: true
  --keys               list every key with its default and environment variable
Precedence: defaults < job file < environment (ULYSSES_<KEY>, e.g. ULYSSES_LEARNING_RATE,
ULYSSES_CLUSTER_HEARTBEAT_INTERVAL_S) < flags (--learning_rate 1e-4, --cluster.max_restarts=5).`;

/**
 * The YAML view leaves out keys that do not apply (LoRA keys without LoRA, preference keys
 * outside DPO and KTO), so the printed file can be fed back as a job config unchanged.
 */
export function printableConfig(c: JobConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...c };
  if (c.finetuning_type !== 'lora') for (const k of ['lora_rank', 'lora_alpha', 'lora_dropout', 'lora_target']) delete out[k];
  const kto = c.stage === 'kto';
  if (c.stage !== 'dpo') for (const k of ['pref_loss', 'simpo_gamma', 'dpo_label_smoothing', ...(kto ? [] : ['pref_beta', 'pref_ftx'])]) delete out[k];
  if (!kto) for (const k of ['kto_chosen_weight', 'kto_rejected_weight']) delete out[k];
  return out;
}

export async function checkConfigCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (argv.includes('--keys')) {
    process.stdout.write(LEAVES.map((l) => `${l.path}  (default ${JSON.stringify(l.default)}; ${envName(l.path)})  ${l.doc}`).join('\n') + '\n');
    return 0;
  }
  const { job, hosts, ranks, command, ignored } = resolveJob(argv, { env: process.env, commandFlags: { json: 'bool' } });
  // everything `up` checks before it starts anything: the model, the data, output_dir, the hosts
  const hostList = hosts ?? [];
  const explicit = job.sources['cluster.launcher'] !== undefined && job.sources['cluster.launcher'] !== 'default';
  const kinds = launcherKinds(hostList.map((h) => h.host), job.cluster.launcher, explicit);
  const found = await preflight({ job, hosts: hostList, hostfile: typeof command.nodes === 'string' ? command.nodes : undefined, kinds, workload: 'train' });
  if (found.problems.length) throw new ConfigError(found.problems);
  const model = { description: found.model };
  if (command.json) {
    const out = {
      config: job.config,
      ignored,
      sources: job.sources,
      configPath: job.configPath ?? null,
      deepspeedPath: job.deepspeedPath ?? null,
      lrAdjust: job.lrAdjust,
      model: model.description,
      checks: found.notes,
      ...(hosts ? { hosts: hosts.map((h) => ({ host: h.host, slots: h.slots })), worldSize: ranks!.length } : {}),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
    return 0;
  }
  const lines: string[] = [`# resolved from ${job.configPath ?? 'the embedded default job'} (defaults < file < env < flags)`];
  if (ignored.length) lines.push('# ignored (no effect here):', ...ignored.map((i) => `#   ${i.key}: ${i.reason} [${i.source}]`));
  if (model.description) lines.push(`# model: ${model.description}`);
  lines.push(...found.notes.map((n) => `# ${n}`));
  if (job.lrAdjust !== 1) lines.push(`# learning_rate includes --adjust-lr ${job.lrAdjust}`);
  if (ranks) lines.push(`# world: ${ranks.length} ranks on ${hosts!.map((h) => `${h.host}(${h.slots.length})`).join(', ')}; data-parallel degree ${ranks.length / job.config.sequence_parallel_size}`);
  process.stdout.write(lines.join('\n') + '\n' + dump(printableConfig(job.config), { lineWidth: 120 }));
  return 0;
}
