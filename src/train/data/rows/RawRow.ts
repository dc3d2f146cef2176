/**
 * What the file splitters emit: the bytes of one row (a JSONL/text line without its line break,
 * or one element of a JSON array) and where it starts. Types and limits only.
 */

export interface RawRow {
  /** The row's bytes (UTF-8), not yet decoded or parsed. */
  bytes: Uint8Array;
  /** 1-based line (JSONL, text) or 0-based array index (JSON). */
  row: number;
  rowKind: 'line' | 'index';
  /** Byte offset of the row's first byte in the file. */
  offset: number;
}

/**
 * The largest row accepted. A row is decoded into one JS string, and V8 strings stop at about
 * 2^29 characters; a row above this bound is refused with its location instead of failing later
 * with an out-of-memory error that names nothing.
 */
export const MAX_ROW_BYTES = 256 * 2 ** 20;
