/**
 * One raw row to a parsed row that remembers where it came from (for error messages): JSON rows
 * through JSON.parse (an error names file, row and byte offset), text lines as `{ text }` with the
 * line kept as written (only the line break removed). A pure function of the bytes, so it can be
 * fuzzed; it must never repair a malformed row.
 */
import { DataError } from '../DataError.js';
import type { FileKind } from './fileRows.js';
import type { RawRow } from './RawRow.js';

export interface Row {
  value: unknown;
  file: string;
  /** 1-based line (jsonl/txt) or 0-based array index (json). */
  row: number;
  rowKind: 'line' | 'index';
  /** Byte offset of the row in the file (absent for rows made in memory). */
  offset?: number;
}

const utf8 = new TextDecoder('utf-8');

export function decodeRow(raw: RawRow, kind: FileKind, file: string): Row {
  const text = utf8.decode(raw.bytes);
  const at = { file, row: raw.row, rowKind: raw.rowKind, offset: raw.offset };
  if (kind === 'txt') return { value: { text }, ...at };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(`invalid JSON: ${(err as Error).message}`, at, { cause: err });
  }
  return { value, ...at };
}
