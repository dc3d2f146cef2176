/**
 * Coded errors raised by the engine and its TypeScript wrapper. Native errors arrive as plain
 * Errors with a `code` property; both kinds satisfy `isCodedError`.
 */
export type EngineErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_LAYOUT'
  | 'ERR_ARG'
  | 'ERR_CONFIG'
  | 'ERR_FILE'
  | 'ERR_SAFETENSORS'
  | 'ERR_NATIVE'
  | 'ERR_NO_MEMORY'
  | 'ERR_STATE'
  | 'ERR_ADDON'
  | 'ERR_DEVICE';

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.code = code;
  }
}

export function isCodedError(e: unknown): e is Error & { code: string } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
}
