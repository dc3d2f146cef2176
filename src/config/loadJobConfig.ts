/**
 * Resolves a job configuration: embedded defaults < DeepSpeed JSON (only for keys nobody else
 * set) < YAML file < environment (ULYSSES_<KEY>, nested dots as underscores, e.g.
 * ULYSSES_LEARNING_RATE, ULYSSES_CLUSTER_HEARTBEAT_INTERVAL_S) < command-line flags; then
 * --adjust-lr. Collects EVERY problem (syntax, unknown keys with "did you mean", type, range,
 * enum, cross-field) and throws one ConfigError naming each key, bad value, source and fix.
 * Environment variables with the ULYSSES_ prefix that name no key are left alone (other parts
 * of the runtime read some, e.g. ULYSSES_THREADS). Never exits the process and never writes.
 */
import { readFileSync } from 'node:fs';
import { load, YAMLException } from 'js-yaml';
import { ConfigError, type ConfigProblem } from './ConfigError.js';
import { readDeepSpeedConfig, resolveDeepSpeedPath } from './deepspeed.js';
import { IGNORED_KEYS, UNSUPPORTED_KEYS, isIgnoredKey, isInertValue, isUnsupportedKey } from './ignoredKeys.js';
import { jobSpecOf, type JobSpec } from './JobSpec.js';
import { isJobConfig } from './parseJobSpec.js';
import type { FlagOverride } from './parseJobArgs.js';
import { createConvict } from './convictSchema.js';
import { LEAVES, LEAF_BY_ENV, LEAF_BY_PATH, SECTIONS, checkLeaf, childrenOf, coerceLeaf, envName, type LeafSpec } from './schema.js';
import { suggest } from './suggest.js';
import { evalKeyProblems } from './evalKeyProblems.js';

export interface LoadJobConfigOptions {
  /** YAML job file; absent = the embedded default job */
  configPath?: string;
  /** the file's text, when the caller already has it (tests); configPath is then only a name */
  configText?: string;
  /** the environment to read ULYSSES_<KEY> from (the CLI passes process.env) */
  env: Readonly<Record<string, string | undefined>>;
  overrides?: readonly FlagOverride[];
  /** multiplies learning_rate after every layer (--adjust-lr; parseJobArgs checked it is > 0) */
  adjustLr?: number;
  /** total ranks when known (from the hostfile): sequence_parallel_size must divide it */
  worldSize?: number;
}

export interface IgnoredKey {
  key: string;
  reason: string;
  source: string;
}

/** The job (JobSpec.ts) with where it came from, for `check-config` and `up`'s messages. */
export interface ResolvedJob extends JobSpec {
  ignored: IgnoredKey[];
  /** where each key's value came from: 'default', 'job.yaml:7', 'env ULYSSES_SEED', 'flag --seed', 'deepspeed ds.json', 'derived' */
  sources: Record<string, string>;
  configPath?: string;
  deepspeedPath?: string;
  lrAdjust: number;
}

interface Setting {
  value: unknown;
  source: string;
  explicit: boolean;
}

export function loadJobConfig(opts: LoadJobConfigOptions): ResolvedJob {
  const problems: ConfigProblem[] = [];
  const ignored: IgnoredKey[] = [];
  const values = new Map<string, Setting>(LEAVES.map((l) => [l.path, { value: l.default, source: 'default', explicit: false }]));

  const apply = (l: LeafSpec, raw: unknown, source: string): void => {
    if (raw === null && !l.nullable) return; // `key:` with no value in YAML: keep the lower layer
    const v = coerceLeaf(l, raw);
    const bad = checkLeaf(l, v);
    if (bad) problems.push({ source, key: l.path, value: raw, ...bad });
    else values.set(l.path, { value: v, source, explicit: true });
  };

  // 1. the YAML file
  if (opts.configPath !== undefined || opts.configText !== undefined) {
    const name = opts.configPath ?? 'config';
    const text = readText(name, opts.configText, problems);
    if (text !== undefined) {
      const doc = parseYaml(name, text, problems);
      if (doc !== undefined) walkFile(doc, '', name, text.split(/\r?\n/), apply, ignored, problems);
    }
  }
  // 2. the environment
  for (const [name, raw] of Object.entries(opts.env)) {
    const l = LEAF_BY_ENV.get(name);
    if (l && raw !== undefined) apply(l, raw, `env ${name}`);
  }
  // 3. flags
  for (const o of opts.overrides ?? []) apply(LEAF_BY_PATH.get(o.key)!, o.value === true ? 'true' : o.value, `flag ${o.flag}`);

  // 4. the DeepSpeed JSON fills keys no layer set; concrete conflicts are problems
  const get = (p: string) => values.get(p)!.value;
  let deepspeedPath: string | undefined;
  let trainBatchSize: number | undefined;
  const ds = get('deepspeed');
  if (typeof ds === 'string') {
    deepspeedPath = resolveDeepSpeedPath(ds, opts.configPath);
    const dsSource = `deepspeed ${ds}`;
    const m = readDeepSpeedConfig(deepspeedPath, values.get('deepspeed')!.source);
    problems.push(...m.problems);
    ignored.push(...m.ignored.map((i) => ({ ...i, source: dsSource })));
    trainBatchSize = m.trainBatchSize;
    for (const [key, v] of Object.entries(m.values)) {
      const l = LEAF_BY_PATH.get(key)!;
      const cur = values.get(key)!;
      const coerced = coerceLeaf(l, v);
      const bad = checkLeaf(l, coerced);
      if (bad) problems.push({ source: dsSource, key, value: v, ...bad });
      else if (!cur.explicit) values.set(key, { value: coerced, source: dsSource, explicit: true });
      // The job's own sequence_parallel_size wins silently (LLaMA-Factory's rule); other keys
      // must agree, as HF Trainer requires of non-"auto" DeepSpeed values.
      else if (key !== 'sequence_parallel_size' && coerced !== cur.value)
        problems.push({
          source: dsSource,
          key,
          value: v,
          message: `disagrees with ${key}=${JSON.stringify(cur.value)} from ${cur.source}`,
          fix: 'set it to "auto" in the DeepSpeed JSON or make them equal',
        });
    }
  }

  // 5. --adjust-lr: the one place it is applied
  const lrAdjust = opts.adjustLr ?? 1;
  if (opts.adjustLr !== undefined) {
    const lr = values.get('learning_rate')!;
    values.set('learning_rate', { ...lr, value: (lr.value as number) * lrAdjust, source: `${lr.source} x --adjust-lr ${lrAdjust}` });
  }

  // 6. derived defaults (LLaMA-Factory's): lora_alpha = 2 * rank, packing on for pt and with neat_packing
  if (get('lora_alpha') === null) values.set('lora_alpha', { value: 2 * (get('lora_rank') as number), source: 'derived', explicit: false });
  if (get('packing') === null) values.set('packing', { value: get('stage') === 'pt' || get('neat_packing') === true, source: 'derived', explicit: false });

  crossCheck(values, problems, opts.worldSize, trainBatchSize);

  const config = nest(values);
  if (problems.length === 0) {
    // convict's own validation as a safety net over the same formats (strict: no stray keys).
    try {
      createConvict().load(config).validate({ allowed: 'strict' });
    } catch (e) {
      for (const line of (e as Error).message.split('\n')) problems.push({ message: line });
    }
  }
  if (problems.length || !isJobConfig(config, opts.configPath ?? 'config', problems)) throw new ConfigError(problems);

  const sources: Record<string, string> = {};
  for (const [k, s] of values) sources[k] = s.source;
  return { ...jobSpecOf(config), ignored, sources, configPath: opts.configPath, deepspeedPath, lrAdjust };
}

function readText(name: string, given: string | undefined, problems: ConfigProblem[]): string | undefined {
  if (given !== undefined) return given;
  try {
    return readFileSync(name, 'utf8');
  } catch (e) {
    problems.push({ source: name, message: `cannot read the config file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, fix: 'check the path' });
    return undefined;
  }
}

function parseYaml(name: string, text: string, problems: ConfigProblem[]): Record<string, unknown> | undefined {
  let doc: unknown;
  try {
    doc = load(text);
  } catch (e) {
    if (e instanceof YAMLException) {
      const line = e.mark ? `:${e.mark.line + 1}` : '';
      problems.push({ source: name + line, message: `YAML syntax error: ${e.reason}`, fix: 'fix the YAML (indentation, colons, quotes)' });
    } else problems.push({ source: name, message: `cannot parse YAML: ${(e as Error).message}` });
    return undefined;
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push({ source: name, message: 'must be a mapping of keys to values', fix: 'write lines like `learning_rate: 1.0e-4`' });
    return undefined;
  }
  return doc as Record<string, unknown>;
}

/** Each line's key and indentation (null: no `key:` there), parsed once per document. */
const keyedLines = new WeakMap<readonly string[], ({ indent: number; key: string } | null)[]>();

function keysOf(lines: readonly string[]): ({ indent: number; key: string } | null)[] {
  let keys = keyedLines.get(lines);
  if (!keys) {
    keys = lines.map((l) => {
      const m = /^(\s*)["']?([A-Za-z0-9_.-]+)["']?\s*:/.exec(l);
      return m ? { indent: m[1]!.length, key: m[2]! } : null;
    });
    keyedLines.set(lines, keys);
  }
  return keys;
}

/**
 * 1-based line of a (nested) key in block-style YAML, for messages; undefined if not found.
 * Called for every key of a document: the lines are parsed once, not once per key.
 */
export function keyLine(lines: readonly string[], path: string): number | undefined {
  const keys = keysOf(lines);
  let start = 0;
  let indent = -1;
  let found: number | undefined;
  for (const seg of path.split('.')) {
    found = undefined;
    for (let i = start; i < keys.length; i++) {
      const m = keys[i];
      if (!m) continue;
      const ind = m.indent;
      if (indent >= 0 && ind <= indent) break;
      if (indent < 0 && ind > 0) continue;
      if (m.key === seg) {
        found = i;
        indent = ind;
        start = i + 1;
        break;
      }
    }
    if (found === undefined) return undefined;
  }
  return found === undefined ? undefined : found + 1;
}

function walkFile(
  obj: Record<string, unknown>,
  section: string,
  file: string,
  lines: readonly string[],
  apply: (l: LeafSpec, raw: unknown, source: string) => void,
  ignored: IgnoredKey[],
  problems: ConfigProblem[],
): void {
  for (const [k, v] of Object.entries(obj)) {
    const path = section ? `${section}.${k}` : k;
    const line = keyLine(lines, path);
    const source = line ? `${file}:${line}` : file;
    const leaf = LEAF_BY_PATH.get(path);
    if (leaf) apply(leaf, v, source);
    else if (SECTIONS.has(path)) {
      if (v === null) continue;
      if (typeof v === 'object' && !Array.isArray(v)) walkFile(v as Record<string, unknown>, path, file, lines, apply, ignored, problems);
      else problems.push({ source, key: path, value: v, message: 'must be a section (a mapping of keys)', fix: `indent its keys under ${k}:` });
    } else if (!section && isIgnoredKey(k)) ignored.push({ key: k, reason: IGNORED_KEYS[k]!, source });
    else if (!section && isUnsupportedKey(k)) {
      if (isInertValue(k, v)) ignored.push({ key: k, reason: 'not set', source });
      else problems.push({ source, key: k, value: v, message: `is not supported here: ${UNSUPPORTED_KEYS[k]}`, fix: 'remove it' });
    }
    else problems.push({ source, key: path, message: 'unknown key', fix: hint(k, section) });
  }
}

function hint(k: string, section: string): string {
  const siblings = childrenOf(section);
  const near = suggest(k, section ? siblings : [...siblings, ...Object.keys(IGNORED_KEYS)]);
  if (near) return `did you mean ${section ? section + '.' : ''}${near}?`;
  // a nested key written at the wrong level
  const elsewhere = LEAVES.find((l) => l.path.endsWith('.' + k) || l.path === k);
  if (elsewhere) return `did you mean ${elsewhere.path.split('.').join(' > ')}?`;
  return section ? `${section} takes ${siblings.join(', ')}` : 'remove it (run check-config --keys for the list)';
}

function crossCheck(values: Map<string, Setting>, problems: ConfigProblem[], worldSize: number | undefined, trainBatchSize: number | undefined): void {
  const s = (p: string) => values.get(p)!;
  const v = <T>(p: string) => s(p).value as T;
  if (v<number>('max_steps') === -1 && v<number>('num_train_epochs') <= 0)
    problems.push({ key: 'max_steps', source: s('num_train_epochs').source, value: v('num_train_epochs'), message: 'no training length: max_steps is -1 and num_train_epochs is 0', fix: 'set max_steps: N or num_train_epochs > 0' });
  if (v('finetuning_type') !== 'lora')
    for (const k of ['lora_rank', 'lora_alpha', 'lora_dropout', 'lora_target'])
      if (s(k).explicit) problems.push({ key: k, source: s(k).source, value: v(k), message: `only has an effect with finetuning_type: lora (it is ${v('finetuning_type')})`, fix: 'remove it or set finetuning_type: lora' });
  if (v('adapter_name_or_path') !== null && v('finetuning_type') !== 'lora')
    problems.push({ key: 'adapter_name_or_path', source: s('adapter_name_or_path').source, value: v('adapter_name_or_path'), message: `needs finetuning_type: lora (it is ${v('finetuning_type')}), as in LLaMA-Factory`, fix: 'set finetuning_type: lora, or remove adapter_name_or_path' });
  // the loss extras at their defaults change nothing (LLaMA-Factory configs often spell them out)
  const changed = (k: string) => s(k).explicit && v(k) !== LEAF_BY_PATH.get(k)!.default;
  const stage = v<string>('stage');
  if (stage !== 'kto')
    for (const k of ['kto_chosen_weight', 'kto_rejected_weight'])
      if (changed(k)) problems.push({ key: k, source: s(k).source, value: v(k), message: `only has an effect with stage: kto (it is ${stage})`, fix: 'remove it or set stage: kto' });
  if (stage === 'kto') {
    // kto reads pref_beta and pref_ftx; the pairwise losses' keys do not apply
    for (const k of ['pref_loss', 'simpo_gamma', 'dpo_label_smoothing'])
      if (changed(k)) problems.push({ key: k, source: s(k).source, value: v(k), message: `only has an effect with stage: dpo (it is kto, whose loss is KTO's)`, fix: 'remove it or set stage: dpo' });
  } else if (stage !== 'dpo') {
    for (const k of ['pref_beta', 'pref_loss', 'pref_ftx', 'simpo_gamma', 'dpo_label_smoothing'])
      if (k === 'pref_beta' || k === 'pref_loss' ? s(k).explicit : changed(k))
        problems.push({ key: k, source: s(k).source, value: v(k), message: `only has an effect with stage: dpo${k === 'pref_beta' || k === 'pref_ftx' ? ' or kto' : ''} (it is ${stage})`, fix: 'remove it or set stage: dpo' });
  } else {
    if (v('pref_loss') !== 'simpo' && changed('simpo_gamma'))
      problems.push({ key: 'simpo_gamma', source: s('simpo_gamma').source, value: v('simpo_gamma'), message: `only has an effect with pref_loss: simpo (it is ${v('pref_loss')})`, fix: 'remove it or set pref_loss: simpo' });
    if (v('pref_loss') !== 'sigmoid' && v<number>('dpo_label_smoothing') !== 0)
      problems.push({ key: 'dpo_label_smoothing', source: s('dpo_label_smoothing').source, value: v('dpo_label_smoothing'), message: `only has an effect with pref_loss: sigmoid (it is ${v('pref_loss')})`, fix: 'set it to 0 or use pref_loss: sigmoid' });
  }
  if (v('precompute_ref_log_probs') === true && (stage === 'dpo' ? ['orpo', 'simpo'].includes(v('pref_loss')) : stage !== 'kto'))
    problems.push({ key: 'precompute_ref_log_probs', source: s('precompute_ref_log_probs').source, value: true, message: `only has an effect with a reference model: stage kto, or dpo with pref_loss sigmoid, ipo or hinge (it is ${stage}${stage === 'dpo' ? ` with pref_loss ${v<string>('pref_loss')}, reference-free` : ''})`, fix: 'remove it' });
  problems.push(...evalKeyProblems((p) => values.get(p)!));
  const sp = v<number>('sequence_parallel_size');
  if (worldSize !== undefined && worldSize % sp !== 0)
    problems.push({ key: 'sequence_parallel_size', source: s('sequence_parallel_size').source, value: sp, message: `must divide the world size ${worldSize}`, fix: `use one of ${divisors(worldSize).join(', ')} or change the hosts' slots` });
  if (v<number>('cutoff_len') < sp)
    problems.push({ key: 'cutoff_len', source: s('cutoff_len').source, value: v('cutoff_len'), message: `is shorter than sequence_parallel_size ${sp} (each rank needs at least one token)`, fix: `use cutoff_len >= ${sp}` });
  const maxSteps = v<number>('max_steps');
  if (maxSteps > 0 && v<number>('warmup_steps') > maxSteps)
    problems.push({ key: 'warmup_steps', source: s('warmup_steps').source, value: v('warmup_steps'), message: `exceeds max_steps ${maxSteps}`, fix: `use warmup_steps <= ${maxSteps}` });
  if (trainBatchSize !== undefined && worldSize !== undefined && worldSize % sp === 0) {
    const want = v<number>('per_device_train_batch_size') * v<number>('gradient_accumulation_steps') * (worldSize / sp);
    if (want !== trainBatchSize)
      problems.push({ key: 'deepspeed train_batch_size', value: trainBatchSize, message: `must equal per_device_train_batch_size x gradient_accumulation_steps x data-parallel degree = ${want}`, fix: 'set it to "auto"' });
  }
  const hb = v<number>('cluster.heartbeat_interval_s') * v<number>('cluster.heartbeat_miss_limit');
  if (v<number>('cluster.step_timeout_s') <= hb)
    problems.push({ key: 'cluster.step_timeout_s', source: s('cluster.step_timeout_s').source, value: v('cluster.step_timeout_s'), message: `must exceed heartbeat_interval_s x heartbeat_miss_limit = ${hb} s (a hang is only told from a death after that)`, fix: `use more than ${hb}` });
  for (const k of ['cluster.bind_address', 'cluster.advertise_address', 'cluster.visualizer.host']) {
    const a = v<string | null>(k);
    if (a !== null && !/^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*)$/.test(a))
      problems.push({ key: k, source: s(k).source, value: a, message: 'is not a host name or IP address', fix: 'e.g. 127.0.0.1, 0.0.0.0 or node-1' });
  }
  for (const [enter, exit] of [['gradient_policy.vanishing.threshold', 'gradient_policy.vanishing.exit_threshold'], ['gradient_policy.late_stage.vanishing_threshold', 'gradient_policy.late_stage.exit_threshold']] as const)
    if (v<number>(exit) < v<number>(enter))
      problems.push({ key: exit, source: s(exit).source, value: v(exit), message: `is below ${enter} = ${v(enter)} (the state would be left as soon as it is entered)`, fix: `use a value >= ${v(enter)}` });
  const cp = v<number>('cluster.coordinator_port');
  if (cp !== 0 && cp === v<number>('cluster.visualizer.port') && v('cluster.visualizer.enabled'))
    problems.push({ key: 'cluster.visualizer.port', source: s('cluster.visualizer.port').source, value: cp, message: 'is the same as cluster.coordinator_port', fix: 'use another port or 0 (ephemeral)' });
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

function nest(values: Map<string, Setting>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const l of LEAVES) {
    const parts = l.path.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    const v = values.get(l.path)!.value;
    node[parts[parts.length - 1]!] = Array.isArray(v) ? [...v] : v;
  }
  return root;
}

/** One line for the start of a run: "ignored (no effect here): key (reason); ...". */
export function formatIgnored(ignored: readonly IgnoredKey[]): string | undefined {
  if (ignored.length === 0) return undefined;
  return 'ignored (no effect here): ' + ignored.map((i) => `${i.key} (${i.reason})`).join('; ');
}

/** The env name of a key, for docs and messages. */
export { envName };

