/**
 * output_dir as HF Trainer treats it: a run writes into an empty (or new) directory; an existing
 * non-empty one is refused unless overwrite_output_dir (cleared first) or a resume
 * (resume_from_checkpoint) says what to do with it, so two runs never mix their metrics, events
 * and checkpoints. Reads the directory listing; only clearOutputDir writes (removes). Must never
 * remove anything outside output_dir.
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { ConfigProblem } from './ConfigError.js';
import type { JobConfig } from './JobConfig.js';

export interface OutputDirState {
  path: string;
  exists: boolean;
  /** entry names, sorted (empty when missing) */
  entries: string[];
  /** checkpoint-<step> directories, by step */
  checkpoints: string[];
}

export function inspectOutputDir(dir: string): OutputDirState {
  const path = resolve(dir);
  let entries: string[] = [];
  let exists = false;
  try {
    exists = statSync(path).isDirectory();
    if (exists) entries = readdirSync(path).sort();
  } catch {
    /* missing: a fresh run */
  }
  const checkpoints = entries.filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));
  return { path, exists, entries, checkpoints };
}

const inside = (child: string, parent: string) => {
  const r = relative(parent, child);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** Why output_dir cannot be used as the config says (empty when it can). */
export function outputDirProblems(c: Pick<JobConfig, 'output_dir' | 'overwrite_output_dir' | 'resume_from_checkpoint'>, source?: string): ConfigProblem[] {
  const st = inspectOutputDir(c.output_dir);
  const where = source ? { source } : {};
  try {
    if (!st.exists && statSync(st.path)) return [{ key: 'output_dir', value: c.output_dir, message: 'exists and is not a directory', fix: 'choose another output_dir', ...where }];
  } catch {
    /* missing: fine */
  }
  const resume = c.resume_from_checkpoint;
  if (c.overwrite_output_dir && typeof resume === 'string' && inside(resolve(resume), st.path))
    return [{ key: 'overwrite_output_dir', value: true, message: `would clear ${st.path}, which holds resume_from_checkpoint ${resume}`, fix: 'drop overwrite_output_dir to resume, or resume from a checkpoint outside output_dir', ...where }];
  if (st.entries.length === 0 || c.overwrite_output_dir || resume !== null) return [];
  const shown = st.entries.slice(0, 4).join(', ') + (st.entries.length > 4 ? `, ... (${st.entries.length} entries)` : '');
  return [
    {
      key: 'output_dir',
      value: c.output_dir,
      message: `already holds a run (${shown}); a new run there would mix with it`,
      fix: `set overwrite_output_dir: true to clear it first, or resume_from_checkpoint: true to continue it${st.checkpoints.length ? ` (from ${st.checkpoints[st.checkpoints.length - 1]})` : ''}, or choose another output_dir`,
      ...where,
    },
  ];
}

/** overwrite_output_dir: removes everything inside output_dir (the directory itself stays). */
export function clearOutputDir(dir: string): void {
  const st = inspectOutputDir(dir);
  for (const name of st.entries) rmSync(join(st.path, name), { recursive: true, force: true });
}
