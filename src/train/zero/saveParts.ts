/**
 * The collective half of a ZeRO checkpoint (DESIGN.md: per-part optimizer state with its
 * partition map): rank 0 makes checkpoint-<step>'s temporary directory, every rank writes its own
 * part of the moments into it, and rank 0 adds the partition map; rank 0 then completes the
 * checkpoint (checkpoint.ts writeCheckpoint with `parts`) and renames it into place. When some
 * rank cannot write there (output_dir not shared by every host), the parts are gathered and rank 0
 * writes them all. Every rank calls this at the same point; must never let rank 0 commit a
 * checkpoint before every part is on disk.
 */
import type { ParamView } from '../../engine/model/index.js';
import { prepareCheckpointTmp, checkpointTmpDir } from '../checkpoint.js';
import type { Optimizer } from '../loop/Optimizer.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { PARTITION_MAP_FILE, partitionMapOf, writeOptimizerPart, writePartitionMap } from './optimizerParts.js';

/** Resolves (on every rank) to what rank 0 passes to writeCheckpoint as `parts`. */
export async function writeOptimizerParts(rt: ParallelRuntime, optimizer: Optimizer, views: readonly ParamView[], outputDir: string, step: number): Promise<{ dir: string; files: string[] }> {
  const partition = optimizer.partition;
  if (!partition) throw new Error('writeOptimizerParts: the optimizer state is not partitioned');
  const { world } = partition;
  const rank = rt.rank;
  // the directory is named after rank 0's process (stale ones are swept by that pid)
  const pid = Int32Array.of(process.pid);
  await rt.broadcast(pid, 'world', 0);
  let prepareError: unknown;
  if (rank === 0) await prepareCheckpointTmp(outputDir, step).catch((e: unknown) => (prepareError = e));
  const prepared = Float64Array.of(prepareError === undefined ? 0 : 1);
  await rt.allReduceSum(prepared, 'world');
  if (prepareError !== undefined) throw prepareError;
  if (prepared[0]! > 0) throw new Error(`checkpoint-${step}: rank 0 could not make the checkpoint's temporary directory`);
  const dir = checkpointTmpDir(outputDir, step, pid[0]!);
  const failed = Float64Array.of(await writeOptimizerPart(dir, rank, world, step, optimizer.m, optimizer.v).then(() => 0, () => 1));
  await rt.allReduceSum(failed, 'world');
  if (failed[0]! > 0) {
    // not one shared directory: every part to rank 0, which writes them all
    const all = await optimizer.gatheredParts();
    const n = partition.partLength;
    if (rank === 0) for (let r = 0; r < world; r++) await writeOptimizerPart(dir, r, world, step, all.m.subarray(r * n, (r + 1) * n), all.v.subarray(r * n, (r + 1) * n));
  }
  const map = partitionMapOf(views, partition, step);
  if (rank === 0) await writePartitionMap(dir, map);
  return { dir, files: [...map.files, PARTITION_MAP_FILE] };
}
