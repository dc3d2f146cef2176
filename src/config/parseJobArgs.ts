/**
 * Splits a command line into the job config path, per-key overrides and the command's own
 * flags: `job.yaml` / `--config job.yaml` / `--config_file job.yaml`, `--KEY VALUE`,
 * `--KEY=VALUE`, bare booleans (`--bf16`, `--no-bf16`), `--adjust-lr [X]` (bare = 1.0),
 * `--debug`. Dashes in names count as underscores; a nested key may be given by its full dotted
 * path or by its last part when that is unique (`--heartbeat_interval_s 2`). Collects every
 * problem instead of stopping at the first; never reads files or the environment.
 */
import type { ConfigProblem } from './ConfigError.js';
import { UNSUPPORTED_KEYS, isIgnoredKey, isUnsupportedKey } from './ignoredKeys.js';
import { LEAVES, LEAF_BY_PATH, type LeafSpec } from './schema.js';
import { suggest } from './suggest.js';

export interface FlagOverride {
  /** leaf path */
  key: string;
  /** the raw text, or true for a bare boolean flag */
  value: string | boolean;
  /** the flag as written, for messages */
  flag: string;
}

export type CommandFlagKind = 'bool' | 'string';

export interface ParsedJobArgs {
  configPath?: string;
  overrides: FlagOverride[];
  /** learning_rate multiplier from --adjust-lr (undefined when absent) */
  adjustLr?: number;
  /** the command's own flags (e.g. json, nodes), by name with dashes as underscores */
  command: Record<string, string | boolean>;
  /** flags naming keys that have no effect here */
  ignored: { key: string; flag: string }[];
  problems: ConfigProblem[];
}

const byLastPart = new Map<string, LeafSpec[]>();
for (const l of LEAVES) {
  const last = l.path.split('.').pop()!;
  if (last !== l.path) byLastPart.set(last, [...(byLastPart.get(last) ?? []), l]);
}

/** Aliases kept from DESIGN.md's command line. */
const ALIASES: Record<string, string> = { launcher: 'cluster.launcher' };

function lookup(name: string): LeafSpec | LeafSpec[] | undefined {
  const direct = LEAF_BY_PATH.get(ALIASES[name] ?? name);
  if (direct) return direct;
  const nested = byLastPart.get(name);
  if (!nested) return undefined;
  return nested.length === 1 ? nested[0] : nested;
}

const BOOL_TEXT = /^(true|false|yes|no|on|off|1|0)$/i;
const NUMBER_TEXT = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

export function parseJobArgs(argv: readonly string[], commandFlags: Record<string, CommandFlagKind> = {}): ParsedJobArgs {
  const out: ParsedJobArgs = { overrides: [], command: {}, ignored: [], problems: [] };
  const takesValue = (i: number) => i < argv.length && !argv[i]!.startsWith('--');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      if (out.configPath === undefined) out.configPath = arg;
      else out.problems.push({ key: arg, message: 'unexpected argument (the config file is already ' + JSON.stringify(out.configPath) + ')', fix: 'give one config file; set keys with --KEY VALUE' });
      continue;
    }
    const eq = arg.indexOf('=');
    const rawName = arg.slice(2, eq >= 0 ? eq : undefined);
    const name = rawName.replace(/-/g, '_');
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const flag = '--' + rawName;
    const value = (): string | undefined => {
      if (inline !== undefined) return inline;
      if (takesValue(i + 1)) return argv[++i]!;
      out.problems.push({ key: flag, message: 'needs a value', fix: `write ${flag} VALUE or ${flag}=VALUE` });
      return undefined;
    };

    if (name === 'config' || name === 'config_file') {
      const v = value();
      if (v === undefined) continue;
      if (out.configPath !== undefined) out.problems.push({ key: flag, value: v, message: `a config file is already given (${out.configPath})`, fix: 'give one config file' });
      else out.configPath = v;
      continue;
    }
    if (name === 'adjust_lr') {
      let text = inline;
      if (text === undefined && i + 1 < argv.length && NUMBER_TEXT.test(argv[i + 1]!)) text = argv[++i]!;
      const x = text === undefined ? 1.0 : NUMBER_TEXT.test(text) ? Number(text) : NaN;
      if (!(Number.isFinite(x) && x > 0)) out.problems.push({ key: flag, value: text, message: 'must be a positive number', fix: 'e.g. --adjust-lr 0.5 (bare --adjust-lr means 1.0)' });
      else out.adjustLr = x;
      continue;
    }
    if (name in commandFlags) {
      if (commandFlags[name] === 'bool') {
        if (inline !== undefined && !BOOL_TEXT.test(inline)) out.problems.push({ key: flag, value: inline, message: 'must be true or false', fix: `write ${flag} alone` });
        else out.command[name] = inline === undefined ? true : /^(true|yes|on|1)$/i.test(inline);
      } else {
        const v = value();
        if (v !== undefined) out.command[name] = v;
      }
      continue;
    }
    let negated = false;
    let found = lookup(name);
    if (found === undefined && name.startsWith('no_')) {
      const base = lookup(name.slice(3));
      if (base && !Array.isArray(base) && base.kind === 'bool') {
        found = base;
        negated = true;
      }
    }
    if (Array.isArray(found)) {
      out.problems.push({ key: flag, message: 'is ambiguous', fix: `use the full name: ${found.map((l) => '--' + l.path).join(' or ')}` });
      if (inline === undefined && takesValue(i + 1)) i++;
      continue;
    }
    if (found === undefined) {
      if (isIgnoredKey(name)) {
        out.ignored.push({ key: name, flag });
        if (inline === undefined && takesValue(i + 1)) i++;
        continue;
      }
      if (isUnsupportedKey(name)) {
        out.problems.push({ key: flag, message: `is not supported here: ${UNSUPPORTED_KEYS[name]}`, fix: 'remove it' });
        if (inline === undefined && takesValue(i + 1)) i++;
        continue;
      }
      const near = suggest(name, [...LEAF_BY_PATH.keys(), ...byLastPart.keys(), ...Object.keys(commandFlags), 'config', 'adjust_lr']);
      out.problems.push({ key: flag, message: 'unknown option', fix: near ? `did you mean --${near}?` : 'run check-config --help for the keys' });
      if (inline === undefined && takesValue(i + 1) && !/\.ya?ml$/.test(argv[i + 1]!)) i++;
      continue;
    }
    if (negated) {
      if (inline !== undefined) out.problems.push({ key: flag, value: inline, message: 'takes no value', fix: `write ${flag} alone` });
      else out.overrides.push({ key: found.path, value: 'false', flag });
      continue;
    }
    if (found.kind === 'bool' || found.kind === 'resume') {
      // Bare form means true.
      if (inline !== undefined) out.overrides.push({ key: found.path, value: inline, flag });
      // A following word that is not a job file is taken as the value (so `--bf16 maybe` is
      // reported as a bad boolean rather than as a second config file).
      else if (takesValue(i + 1) && !/\.ya?ml$/.test(argv[i + 1]!)) out.overrides.push({ key: found.path, value: argv[++i]!, flag });
      else out.overrides.push({ key: found.path, value: true, flag });
      continue;
    }
    const v = value();
    if (v !== undefined) out.overrides.push({ key: found.path, value: v, flag });
  }
  return out;
}
