/**
 * The rows of a data file, parsed and located: `streamRows` yields them one at a time (memory:
 * one chunk plus one row), `readRows` collects them for small files and tests. Both read through
 * the same splitters and decoder as the token cache's workers, so rows, locations and errors are
 * the same on every path; `limit` stops reading after that many rows.
 */
import { decodeRow, type Row } from './rows/decodeRow.js';
import { fileKind, rawRows } from './rows/fileRows.js';

export type { Row } from './rows/decodeRow.js';
export { fileKind, type FileKind } from './rows/fileRows.js';

export function* streamRows(file: string, limit: number | null = null): Generator<Row> {
  const kind = fileKind(file);
  if (limit !== null && limit <= 0) return;
  let n = 0;
  for (const raw of rawRows(file, kind)) {
    yield decodeRow(raw, kind, file);
    if (limit !== null && ++n >= limit) return;
  }
}

export function readRows(file: string, limit: number | null = null): Row[] {
  return Array.from(streamRows(file, limit));
}
