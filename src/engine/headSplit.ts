/**
 * The head-split rule of Ulysses sequence parallelism (REFERENCE §2), its one TypeScript
 * definition: P ranks split H query heads when H % P == 0, and Hkv key/value heads when
 * Hkv % P == 0 or P % Hkv == 0 (each kv head then replicated P / Hkv times). Everything that
 * judges a layout before processes start (train/validateParallel.ts) or sizes a buffer by it
 * (Communicator.seqToHeadKv) asks here; the native all-to-alls (comm/ulysses.cc) check the same
 * rule again at run time as the guard. Pure: no I/O, no native code.
 */
import { EngineError } from './errors.js';

/** The part of the rule that (H, Hkv, P) break: the query heads, the key/value heads, or neither (null). */
export type HeadSplitProblem = 'heads' | 'kvHeads' | null;

const positiveInt = (x: number) => Number.isInteger(x) && x > 0;

/** P splits Hkv key/value heads: each rank gets Hkv / P of them, or one replica of a kv head. */
const kvSplits = (Hkv: number, P: number) => Hkv % P === 0 || P % Hkv === 0;

/** Which part of the rule fails for positive integers H, Hkv, P (null: P splits both). */
export function headSplitProblem(H: number, Hkv: number, P: number): HeadSplitProblem {
  if (H % P !== 0) return 'heads';
  if (!kvSplits(Hkv, P)) return 'kvHeads';
  return null;
}

/** Whether P can split H query heads and Hkv kv heads (with replication when P > Hkv). */
export function headsSplit(heads: number, kvHeads: number, sp: number): boolean {
  return headSplitProblem(heads, kvHeads, sp) === null;
}

/** The SP degrees that work for these heads (and divide `world` when given), ascending. */
export function validSpDegrees(heads: number, kvHeads: number, world?: number): number[] {
  const out: number[] = [];
  for (let p = 1; p <= heads; p++) if (headsSplit(heads, kvHeads, p) && (world === undefined || world % p === 0)) out.push(p);
  return out;
}

/** Heads per rank of k/v after the seq->head all-to-all; refuses invalid (Hkv, P) naming the numbers. */
export function kvHeadsPerRank(Hkv: number, P: number): number {
  if (positiveInt(Hkv) && positiveInt(P) && kvSplits(Hkv, P)) return Hkv % P === 0 ? Hkv / P : 1;
  throw new EngineError(
    'ERR_CONFIG',
    `key/value heads Hkv=${Hkv} must be divisible by the sequence-parallel degree P=${P}, or divide it (each kv head is then replicated P/Hkv times); choose P among the divisors or multiples of ${Hkv}`,
  );
}

/** Validates (H, Hkv, P, world) for Ulysses before any process starts (ERR_CONFIG naming the numbers). */
export function checkUlyssesLayout(H: number, Hkv: number, P: number, world = P): void {
  if (!positiveInt(P)) throw new EngineError('ERR_CONFIG', `sequence-parallel degree P must be a positive integer, got ${P}`);
  if (!Number.isInteger(H) || headSplitProblem(H, Hkv, P) === 'heads')
    throw new EngineError('ERR_CONFIG', `attention heads H=${H} must be divisible by the sequence-parallel degree P=${P}; choose P among the divisors of ${H}`);
  kvHeadsPerRank(Hkv, P);
  if (!Number.isInteger(world) || world % P !== 0)
    throw new EngineError('ERR_CONFIG', `world size ${world} must be a multiple of the sequence-parallel degree P=${P}`);
}
