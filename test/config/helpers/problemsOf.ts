// The problems of the ConfigError a call throws (a test fails if it throws anything else or nothing).
import { ConfigError, type ConfigProblem } from '../../../src/config/index.js';

export function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
