/**
 * ZeRO's optimizer state in a checkpoint (DESIGN.md, REFERENCE §8): each rank's packed part of the
 * AdamW moments in its own file, `optimizer-part-<r>-of-<world>.safetensors` (tensors `exp_avg`
 * and `exp_avg_sq` of the part's length), and the partition map `zero_partition.json` (world,
 * part length, each tensor's name, shape and chunk), from which a resume on any world size
 * rebuilds the moments and re-cuts them, and on the same cut reads only its own part. The HF
 * weights stay consolidated (checkpoint.ts). Must never load parts whose map names other tensors
 * than the run's, or parts of another step.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ParamView } from '../../engine/model/index.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../engine/safetensors.js';
import { CheckpointError } from '../checkpointError.js';
import { Partition } from './partition.js';

export const PARTITION_MAP_FILE = 'zero_partition.json';

/** The partition map as a checkpoint records it. */
export interface PartitionMapFile {
  version: 1;
  step: number;
  world: number;
  part_length: number;
  /** the part files, rank order */
  files: string[];
  tensors: { name: string; shape: number[]; numel: number; chunk: number }[];
}

const pad = (n: number) => String(n).padStart(5, '0');

export function partFileName(rank: number, world: number): string {
  return `optimizer-part-${pad(rank)}-of-${pad(world)}.safetensors`;
}

export function partitionMapOf(views: readonly ParamView[], partition: Partition, step: number): PartitionMapFile {
  const d = partition.describe();
  return {
    version: 1,
    step,
    world: d.world,
    part_length: d.part_length,
    files: Array.from({ length: d.world }, (_, r) => partFileName(r, d.world)),
    tensors: views.map((v, i) => ({ name: v.name, shape: [...v.shape], numel: v.numel, chunk: d.chunks[i]! })),
  };
}

/** Writes rank `rank`'s packed moments into `dir` (fsynced); resolves to the file's name. */
export async function writeOptimizerPart(dir: string, rank: number, world: number, step: number, m: Float32Array, v: Float32Array): Promise<string> {
  const name = partFileName(rank, world);
  await writeSafetensors(join(dir, name), [
    { name: 'exp_avg', shape: [m.length], data: m },
    { name: 'exp_avg_sq', shape: [v.length], data: v },
  ], { optimizer: 'adamw', step: String(step), rank: String(rank), world: String(world) });
  return name;
}

/** The checkpoint's partition map; null for a checkpoint with consolidated moments (written before parts existed, or without ZeRO). */
export async function readPartitionMap(dir: string): Promise<PartitionMapFile | null> {
  let text: string;
  try {
    text = await readFile(join(dir, PARTITION_MAP_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const map = JSON.parse(text) as PartitionMapFile;
  if (map.version !== 1 || !Number.isInteger(map.world) || map.world < 1 || map.files?.length !== map.world || !Array.isArray(map.tensors)) {
    throw new CheckpointError(`${dir}/${PARTITION_MAP_FILE}: unsupported or malformed partition map`);
  }
  return map;
}

/** The recorded cut over the run's tensors (which must be the map's, in order). */
function recordedPartition(dir: string, map: PartitionMapFile, views: readonly ParamView[]): Partition {
  const bad = views.length !== map.tensors.length ? `${map.tensors.length} tensors, the run trains ${views.length}` : views.map((v, i) => (v.name !== map.tensors[i]!.name || v.numel !== map.tensors[i]!.numel ? `tensor ${i} is ${map.tensors[i]!.name} (${map.tensors[i]!.numel} elements), the run's is ${v.name} (${v.numel})` : '')).find(Boolean);
  if (bad) throw new CheckpointError(`${dir}/${PARTITION_MAP_FILE}: the optimizer parts are for other tensors: ${bad}`);
  return new Partition(views, map.world, map.tensors.map((t) => t.chunk));
}

/** Whether this run cuts the moments as the checkpoint did (then each rank reads only its own part). */
export function sameCut(map: PartitionMapFile, partition: Partition): boolean {
  const d = partition.describe();
  return d.world === map.world && d.part_length === map.part_length && d.chunks.every((c, i) => c === map.tensors[i]?.chunk);
}

/** Rank `rank`'s packed moments from its own part file (on the recorded cut: see sameCut). */
export async function readOwnPart(dir: string, map: PartitionMapFile, rank: number, m: Float32Array, v: Float32Array): Promise<void> {
  const header = await readSafetensorsHeader(join(dir, map.files[rank]!));
  if (header.metadata.step !== String(map.step)) throw new CheckpointError(`${dir}: ${map.files[rank]} is for step ${header.metadata.step}, the partition map for step ${map.step}`);
  await readTensorF32(header, 'exp_avg', m);
  await readTensorF32(header, 'exp_avg_sq', v);
}

/** The full moments (flat like the parameters), rebuilt from every part by the recorded map. */
export async function readAllParts(dir: string, map: PartitionMapFile, views: readonly ParamView[], m: Float32Array, v: Float32Array): Promise<void> {
  const recorded = recordedPartition(dir, map, views);
  const pm = new Float32Array(map.part_length);
  const pv = new Float32Array(map.part_length);
  for (let r = 0; r < map.world; r++) {
    await readOwnPart(dir, map, r, pm, pv);
    for (const s of recorded.segments(r)) {
      m.set(pm.subarray(s.packed, s.packed + s.numel), s.offset);
      v.set(pv.subarray(s.packed, s.packed + s.numel), s.offset);
    }
  }
}

/** Writes the partition map into `dir` (fsynced). */
export async function writePartitionMap(dir: string, map: PartitionMapFile): Promise<void> {
  const fh = await open(join(dir, PARTITION_MAP_FILE), 'w');
  try {
    await fh.writeFile(JSON.stringify(map, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}
