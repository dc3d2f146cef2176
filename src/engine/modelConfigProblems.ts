/**
 * The problems found in a model config.json, collected rather than thrown one at a time, so
 * check-config can list every one of them (each names its key) and parseModelConfig can refuse
 * with all of them in one ERR_CONFIG. A problem has the shape of the config layer's ConfigProblem
 * (key, value, message, fix), so callers can pass them on unchanged. Must never decide anything:
 * it only records.
 */

export interface ModelConfigProblem {
  /** The config.json key (dotted inside rope_scaling / rope_parameters). */
  key: string;
  /** The offending value, when there is one. */
  value?: unknown;
  message: string;
  fix?: string;
}

export class ModelConfigProblems {
  readonly list: ModelConfigProblem[] = [];

  add(key: string, message: string, value?: unknown, fix?: string): void {
    const p: ModelConfigProblem = { key, message };
    if (value !== undefined) p.value = value;
    if (fix !== undefined) p.fix = fix;
    this.list.push(p);
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}

/** `key: message (got value); fix` for one problem. */
export function formatModelConfigProblem(p: ModelConfigProblem): string {
  const value = p.value !== undefined ? ` (got ${JSON.stringify(p.value)})` : '';
  return `${p.key}: ${p.message}${value}${p.fix ? `; ${p.fix}` : ''}`;
}
