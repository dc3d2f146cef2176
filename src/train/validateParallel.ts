/**
 * Validation of a sequence-parallel layout BEFORE any rank process starts (REFERENCE §2, issue 3
 * item 5): the attention heads must split over P, the key/value heads must either split over P or
 * divide it (each kv head then replicated P/Hkv times), and the world must be whole SP blocks.
 * Every problem names the numbers and a fix (the SP degrees that would work). The rule itself is
 * engine/headSplit.ts's; this file words its failures as config problems. Pure: no I/O, no native
 * code; it must never accept a layout the Ulysses all-to-alls would refuse later.
 */
import { ConfigError, type ConfigProblem } from '../config/ConfigError.js';
import { headSplitProblem, validSpDegrees } from '../engine/headSplit.js';

export interface ParallelShape {
  /** num_attention_heads (H) */
  heads: number;
  /** num_key_value_heads (Hkv) */
  kvHeads: number;
  /** sequence_parallel_size (P) */
  sp: number;
  /** total rank processes, when known */
  world?: number;
  /** where the values came from (e.g. 'models/x/config.json'), for the messages */
  source?: string;
}

function isPositiveInt(x: number): boolean {
  return Number.isInteger(x) && x > 0;
}

/** Every problem of the layout (empty when valid). */
export function parallelProblems(s: ParallelShape): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { heads: H, kvHeads: Hkv, sp: P, world, source } = s;
  if (!isPositiveInt(P)) {
    problems.push({ key: 'sequence_parallel_size', value: P, message: 'must be a positive integer', fix: 'use 1 (no sequence parallelism) or a divisor of the attention heads', source });
    return problems;
  }
  if (!isPositiveInt(H) || !isPositiveInt(Hkv) || H % Hkv !== 0) {
    problems.push({ key: 'num_key_value_heads', value: Hkv, message: `must be a positive divisor of num_attention_heads ${H}`, fix: 'check the model config.json', source });
    return problems;
  }
  const options = () => {
    const ok = validSpDegrees(H, Hkv, world);
    return ok.length ? `use sequence_parallel_size in {${ok.join(', ')}}` : 'use sequence_parallel_size 1';
  };
  const split = headSplitProblem(H, Hkv, P);
  if (split === 'heads') {
    problems.push({
      key: 'sequence_parallel_size',
      value: P,
      message: `the model's ${H} attention heads are not divisible by sequence_parallel_size ${P} (Ulysses gives each rank H/P whole heads)`,
      fix: options(),
      source,
    });
  } else if (split === 'kvHeads') {
    problems.push({
      key: 'sequence_parallel_size',
      value: P,
      message: `the model's ${Hkv} key/value heads neither split over sequence_parallel_size ${P} (${Hkv} % ${P} = ${Hkv % P}) nor divide it for replication (${P} % ${Hkv} = ${P % Hkv})`,
      fix: options(),
      source,
    });
  }
  if (world !== undefined && (!isPositiveInt(world) || world % P !== 0)) {
    problems.push({
      key: 'sequence_parallel_size',
      value: P,
      message: `must divide the world size ${world} (the world is whole sequence-parallel blocks, world = sp x dp)`,
      fix: `${options()}, or run a multiple of ${P} ranks`,
      source,
    });
  }
  return problems;
}

/** Throws a ConfigError (with code ERR_CONFIG, as the workload's errors) listing every problem. */
export function validateParallel(s: ParallelShape): void {
  const problems = parallelProblems(s);
  if (problems.length) throw Object.assign(new ConfigError(problems, 'invalid sequence-parallel layout'), { code: 'ERR_CONFIG' as const });
}
