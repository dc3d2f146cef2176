/**
 * Where token caches live and how a finished one is published: `<output_dir>/token_cache/<digest
 * prefix>/` (or the job's `tokenized_path`), built in a sibling temporary directory named after
 * this host and process, then renamed into place, so readers see a whole cache or none, and a
 * build that died (SIGKILL, power) leaves only a temporary directory that the next build on this
 * host sweeps once its process is gone. Must never remove a directory it did not create or that
 * a live process is still writing.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../DataError.js';
import { CACHE_FILES, parseCacheMeta, type CacheMeta } from './cacheLayout.js';

export function cacheDirFor(outputDir: string, digest: string): string {
  return join(outputDir, 'token_cache', digest.slice(0, 20));
}

const TMP = '.tmp-';
const safeHost = () => hostname().replace(/[^A-Za-z0-9.-]/g, '_');

/** A fresh temporary directory path beside `dir` (not created). */
export function tmpDirFor(dir: string): string {
  return `${dir}${TMP}${safeHost()}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary build directories of this host whose process is gone; returns their names. */
export function sweepStaleBuilds(parent: string): string[] {
  if (!existsSync(parent)) return [];
  const host = safeHost();
  const removed: string[] = [];
  for (const name of readdirSync(parent)) {
    const i = name.indexOf(TMP);
    if (i < 0) continue;
    const m = /^(.*)-(\d+)-[a-z0-9]+$/.exec(name.slice(i + TMP.length));
    if (!m || m[1] !== host || alive(Number(m[2]))) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The meta of the cache in `dir`, or null when there is none (no meta.json). */
export function readCacheMeta(dir: string): CacheMeta | null {
  const file = join(dir, CACHE_FILES.meta);
  if (!existsSync(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`invalid JSON: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseCacheMeta(json, file);
}

/**
 * Moves a finished build into place. With `replace`, an existing cache there is moved aside and
 * removed (readers that mapped it keep their pages); without, an existing complete cache wins
 * (another process published the same digest first) and the build is discarded. Returns the
 * directory that now holds the cache.
 */
export function publishCache(tmp: string, dir: string, replace: boolean): string {
  if (existsSync(dir)) {
    const foreign = foreignContent(dir);
    if (foreign) {
      rmSync(tmp, { recursive: true, force: true });
      throw new DataError(`holds files that are not a token cache of this program (${foreign.join(', ')}); give an empty or missing directory`, { file: dir });
    }
    const ours = readCacheMeta(dir) !== null;
    if (ours && !replace) {
      rmSync(tmp, { recursive: true, force: true });
      return dir;
    }
    const aside = tmpDirFor(dir);
    renameSync(dir, aside);
    rmSync(aside, { recursive: true, force: true });
  }
  renameSync(tmp, dir);
  return dir;
}

/** Whether `dir` is an existing directory holding something that is not a cache of ours. */
export function foreignContent(dir: string): string[] | null {
  if (!existsSync(dir)) return null;
  const names = readdirSync(dir);
  if (names.length === 0 || names.includes(CACHE_FILES.meta)) return null;
  return names.slice(0, 5);
}
