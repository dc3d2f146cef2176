/**
 * The disk of a `disk_full` fault: the run's output_dir becomes a small tmpfs of its own (mounted
 * by the harness, which must be root), and when the fault fires the harness fills it up, so the
 * next checkpoint write finds no space. The mount is removed again when the report is done (lazily
 * if something still holds it). Must never mount or fill anything but that one directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Room for a few checkpoints of the tiny model before the fault fills the rest. */
export const DISK_FULL_TMPFS_MB = 256;

/** Why a tmpfs could not be mounted there (null: mounted). */
export function mountTmpfs(dir: string, sizeMb = DISK_FULL_TMPFS_MB): string | null {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `cannot run mount: ${r.error.message}`;
  return r.status === 0 ? null : `mount -t tmpfs refused (${(r.stderr || `exit ${r.status}`).trim()}): it needs root`;
}

/** Writes a filler file until the file system is full; resolves with the bytes written. */
export async function fillUp(dir: string): Promise<number> {
  const chunk = Buffer.alloc(4 << 20, 0x5a);
  const file = join(dir, '.chaos-filler');
  let bytes = 0;
  for (let size = chunk.length; size >= 4096; ) {
    try {
      await appendFile(file, chunk.subarray(0, size));
      bytes += size;
    } catch {
      // full at this size: smaller pieces fill what is left
      size = size >> 2;
    }
  }
  return bytes;
}

export function unmount(dir: string): void {
  const r = spawnSync('umount', [dir]);
  if (r.status !== 0) spawnSync('umount', ['-l', dir]);
}
