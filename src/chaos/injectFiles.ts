/**
 * Checkpoint corruption for the chaos harness: finds the newest `checkpoint-<step>` directory of
 * a run and damages it (flips bits in, or truncates, its largest file), synchronously, so it can
 * run between two attempts of a job. Must never touch anything outside that one directory.
 */
import { closeSync, openSync, readdirSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export function checkpointSteps(outputDir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(outputDir);
  } catch {
    return [];
  }
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export interface Corruption {
  step: number;
  file: string;
  mode: 'flip' | 'truncate';
  bytes: number;
}

/** Damages the newest checkpoint; null when there is none. */
export function corruptNewestCheckpoint(outputDir: string, mode: 'flip' | 'truncate', seed: number): Corruption | null {
  const steps = checkpointSteps(outputDir);
  const step = steps[steps.length - 1];
  if (step === undefined) return null;
  const dir = join(outputDir, `checkpoint-${step}`);
  const files = readdirSync(dir)
    .map((n) => ({ n, size: statSync(join(dir, n)).size }))
    .filter((f) => f.size > 0)
    .sort((a, b) => b.size - a.size || a.n.localeCompare(b.n));
  const target = files[0];
  if (!target) return null;
  const path = join(dir, target.n);
  if (mode === 'truncate') {
    truncateSync(path, Math.floor(target.size / 2));
    return { step, file: path, mode, bytes: target.size - Math.floor(target.size / 2) };
  }
  // flip one bit in each of 8 bytes spread over the file (positions from the seed), in place:
  // this runs on the coordinator's event loop between two attempts, and rewriting a whole
  // optimizer file there would delay the restart (and the heartbeat checks) for nothing
  const fd = openSync(path, 'r+');
  let flipped = 0;
  try {
    const b = Buffer.alloc(1);
    for (let i = 0; i < 8; i++) {
      const pos = Math.floor(((i + 0.5) / 8) * target.size + (seed % 7)) % target.size;
      readSync(fd, b, 0, 1, pos);
      b[0] = b[0]! ^ (1 << ((seed + i) % 8));
      writeSync(fd, b, 0, 1, pos);
      flipped++;
    }
  } finally {
    closeSync(fd);
  }
  return { step, file: path, mode, bytes: flipped };
}
