/**
 * Which failures a restart can cure. A rank's failure is classified by its error code:
 * deterministic failures (bad config, bad data, a missing or malformed model file, a full disk,
 * no permission) would happen again on every restart, so the job fails at once with one message;
 * everything else (crashes, signals, missed heartbeats, hangs, communication errors, collective
 * timeouts, injected faults, errors of unknown code) is transient and restarts the group as
 * before. A rank that fails deterministically also exits with DETERMINISTIC_EXIT_CODE, so its
 * node agent's exit report says so even when the rank's own report was lost.
 * Pure; must never classify an unknown code as deterministic (an unneeded restart costs time, a
 * wrong give-up costs the run).
 */

/** The exit code of a rank whose failure a restart cannot cure. */
export const DETERMINISTIC_EXIT_CODE = 3;

/** Our codes (and Node's file system codes) that fail the same way on every attempt. */
const DETERMINISTIC = new Set([
  'ERR_CONFIG', // a setting the engine or the data cannot work with
  'ERR_DATA', // a malformed dataset, row or field
  'ERR_FILE', // a model, tokenizer or adapter file that cannot be read
  'ERR_SAFETENSORS', // a malformed safetensors file
  'ERR_CHECKPOINT', // resume_from_checkpoint names no valid checkpoint, or one of another kind of run
  'ERR_DTYPE', // a tensor dtype the engine does not load
  'ERR_SHAPE', // tensors whose shapes do not fit the model
  'ENOSPC', // the disk is full
  'EDQUOT', // the disk quota is exhausted
  'EFBIG', // a file over the file system's limit
  'EACCES', // no permission
  'EPERM',
  'EROFS', // a read-only file system
  'ENOENT', // a file that does not exist
  'ENOTDIR',
  'EISDIR',
]);

export type FailureClass = 'deterministic' | 'transient';

/** The class of a rank failure with this error code (undefined: a crash or an uncoded error). */
export function failureClassOf(code: string | null | undefined): FailureClass {
  return code !== null && code !== undefined && DETERMINISTIC.has(code) ? 'deterministic' : 'transient';
}

/** What the job's failure message says after a deterministic failure's own message. */
export const NOT_RETRIED = 'a restart cannot fix this, so the job was not restarted';
