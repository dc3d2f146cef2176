/**
 * Errors across worker threads: a DataError keeps its location (file, row, offset, field), any
 * other error its message and code (ENOSPC, ERR_FILE, ...), so the rank reports what the worker
 * saw. Plain data both ways; must never lose the code.
 */
import { DataError, type DataErrorWire } from '../DataError.js';

export type WireError = DataErrorWire | { kind: 'Error'; message: string; code?: string; stack?: string };

export function toWireError(e: unknown): WireError {
  if (e instanceof DataError) return e.toWire();
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { kind: 'Error', message: e.message, ...(typeof code === 'string' ? { code } : {}), ...(e.stack ? { stack: e.stack } : {}) };
  }
  return { kind: 'Error', message: String(e) };
}

export function fromWireError(w: WireError): Error {
  if (w.kind === 'DataError') return DataError.fromWire(w);
  const e = Object.assign(new Error(w.message), w.code !== undefined ? { code: w.code } : {});
  if (w.stack) e.stack = w.stack;
  return e;
}
