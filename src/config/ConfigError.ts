/**
 * ConfigError: bad job input (config file, environment, flags, DeepSpeed JSON, hostfile). It
 * carries EVERY problem found, each naming where it is (key or file:line), the bad value and the
 * fix, so a user fixes a config in one pass. The CLI prints all of them and exits 2.
 * Must never be thrown for a failure of the job itself (that is exit 1).
 */
export interface ConfigProblem {
  /** the config key (dotted for nested keys) or the flag/env name the problem is about */
  key?: string;
  /** the offending value, when there is one */
  value?: unknown;
  /** what is wrong */
  message: string;
  /** how to fix it */
  fix?: string;
  /** where the value came from: 'job.yaml:12', 'env ULYSSES_SEED', 'flag --seed', 'ds.json' */
  source?: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.source ? `${p.source}: ` : '';
  const key = p.key ? `${p.key}: ` : '';
  const value = p.value !== undefined ? ` (got ${showValue(p.value)})` : '';
  const fix = p.fix ? `; ${p.fix}` : '';
  return `${where}${key}${p.message}${value}${fix}`;
}

export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[], what = 'invalid configuration') {
    super(`${what}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` + problems.map((p) => '  - ' + formatProblem(p)).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
