/**
 * Everything `check-config` and `up` verify after the config resolves and before any process
 * starts: the model (directory, config, family, heads vs sequence_parallel_size, weights headers,
 * tokenizer) and the datasets' first rows for the train workload, output_dir's state (a run of
 * this same job with a checkpoint is continued, as LLaMA-Factory does; anything else in it needs
 * overwrite_output_dir or resume_from_checkpoint), and that the hosts reached over ssh resolve. Returns every problem at once (the caller throws one
 * ConfigError: exit 2) and the notes both commands print. Never starts, writes or connects.
 */
import type { LauncherKind } from '../actors/launchers/index.js';
import { inspectOutputDir, outputDirProblems } from '../config/outputDir.js';
import { unresolvedHostProblems } from '../config/hostResolution.js';
import type { ConfigProblem, HostEntry, ResolvedJob } from '../config/index.js';
import { basename, join, resolve } from 'node:path';
import { loggedStep, outputDirState } from '../train/outputDirState.js';
import { dataPreflight } from '../train/preflight/dataPreflight.js';
import { modelPreflight } from '../train/preflight/modelPreflight.js';

export interface PreflightOptions {
  job: ResolvedJob;
  hosts: HostEntry[];
  /** the --nodes file, when the hosts came from one (the world is then fixed by it) */
  hostfile?: string;
  /** each host's launcher (launcherKinds); ssh hosts must resolve */
  kinds: LauncherKind[];
  /** `train` checks the model and the data; other workloads only output_dir and hosts */
  workload: string;
}

export interface Preflight {
  problems: ConfigProblem[];
  /** the model's family line, when it could be read */
  model: string | null;
  /** `tokenizer: ...`, `data: ...`, `output_dir: ...` lines */
  notes: string[];
  /** the run of this same job that output_dir holds and `up` continues by itself (null: none) */
  continued: Continued | null;
}

/** A run of this same job in output_dir, continued from one of its checkpoints. */
export interface Continued {
  checkpoint: string;
  /** its newest checkpoint is at max_steps: the run had finished */
  finished: boolean;
}

export async function preflight(o: PreflightOptions): Promise<Preflight> {
  const c = o.job.config;
  const out: Preflight = { problems: [], model: null, notes: [], continued: null };
  if (o.workload === 'train') {
    const world = o.hostfile !== undefined ? o.hosts.reduce((n, h) => n + h.slots.length, 0) : undefined;
    const m = await modelPreflight(c, world);
    out.problems.push(...m.problems);
    out.model = m.description;
    if (m.tokenizer) out.notes.push(`tokenizer: ${m.tokenizer}`);
    // the data needs the model's tokenizer; without a model directory there is nothing to tokenize with
    if (m.dir !== null) {
      const d = dataPreflight(c, m.tok);
      out.problems.push(...d.problems);
      out.notes.push(...d.summary.map((s) => `data: ${s}`));
    }
  }
  const continued = await continuesItself(o.job);
  out.continued = continued;
  if (continued === null) out.problems.push(...outputDirProblems(c, o.job.sources.output_dir));
  const st = inspectOutputDir(c.output_dir);
  out.notes.push(
    `output_dir: ${st.path} ${!st.exists ? '(new)' : st.entries.length === 0 ? '(empty)' : c.overwrite_output_dir ? `(${st.entries.length} entries, cleared first: overwrite_output_dir)` : c.resume_from_checkpoint !== null ? '(resumed)' : continued !== null ? `(a run of this job: continued from ${basename(continued.checkpoint)})` : `(${st.entries.length} entries)`}`,
  );
  if (o.hostfile !== undefined) out.problems.push(...(await unresolvedHostProblems(o.hosts.filter((_, i) => o.kinds[i] === 'ssh'), o.hostfile)));
  return out;
}

/**
 * The checkpoint a job continues from by itself: output_dir holds a run of this same job (same
 * config hash) with a checkpoint, and neither overwrite_output_dir nor resume_from_checkpoint
 * says otherwise. Of its checkpoints the newest whose step metrics.jsonl already logs: steps a
 * killed coordinator never logged (its ranks trained on for a moment) are done again, so the log
 * keeps every step; the weights are the same either way. Null: output_dir's contents are the
 * user's to decide.
 */
export async function continuesItself(job: ResolvedJob): Promise<Continued | null> {
  const c = job.config;
  if (c.overwrite_output_dir || c.resume_from_checkpoint !== null) return null;
  const dir = resolve(c.output_dir);
  const state = await outputDirState(dir, c);
  if (state.kind !== 'same-job') return null;
  const stepOf = (name: string) => Number(name.slice('checkpoint-'.length));
  // a workload whose checkpoints record no hash: the job's own log named it; its checkpoint directories
  const names = inspectOutputDir(dir).checkpoints.filter((n) => state.step === null || stepOf(n) <= state.step);
  if (names.length === 0) return null;
  const logged = await loggedStep(dir);
  const pick = names.filter((n) => stepOf(n) <= logged).at(-1) ?? names.at(-1)!;
  return { checkpoint: join(dir, pick), finished: state.finished };
}
