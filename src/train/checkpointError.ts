/** The error of an unusable checkpoint (code ERR_CHECKPOINT: restarting cannot cure it). A type only. */
export class CheckpointError extends Error {
  readonly code = 'ERR_CHECKPOINT';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
  }
}
