/**
 * Reads a data file as a stream of raw rows: fixed-size chunks (synchronous reads: this runs on
 * a worker thread, or on small files in tests) through the splitter of the file's kind. Memory is
 * one chunk plus the current row, whatever the file size. `.json` is one array of rows,
 * `.jsonl`/`.ndjson` one row per line, `.txt`/`.text` one document per non-empty line. It must
 * never guess a format from content (the extension decides).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { DataError } from '../DataError.js';
import { JsonArraySplitter } from './JsonArraySplitter.js';
import { LineSplitter } from './LineSplitter.js';
import type { RawRow } from './RawRow.js';

export type FileKind = 'json' | 'jsonl' | 'txt';

export function fileKind(file: string): FileKind {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.txt' || ext === '.text') return 'txt';
  throw new DataError(`unsupported file type '${ext}' (use .json, .jsonl or .txt)`, { file });
}

export const CHUNK_BYTES = 2 ** 20;

/** The file's bytes in chunks; each chunk is a fresh buffer, so rows may keep views into it. */
export function* readChunks(file: string, chunkBytes = CHUNK_BYTES): Generator<Uint8Array> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new DataError(`cannot read: ${(err as Error).message}`, { file }, { cause: err });
  }
  try {
    let position = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(chunkBytes);
      let n: number;
      try {
        n = readSync(fd, buf, 0, chunkBytes, position);
      } catch (err) {
        throw new DataError(`cannot read: ${(err as Error).message}`, { file, offset: position }, { cause: err });
      }
      if (n === 0) return;
      position += n;
      yield n === chunkBytes ? buf : buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/** The raw rows of a file, in order. */
export function* rawRows(file: string, kind: FileKind = fileKind(file), chunkBytes = CHUNK_BYTES): Generator<RawRow> {
  if (kind === 'json') {
    const split = new JsonArraySplitter(file);
    for (const chunk of readChunks(file, chunkBytes)) yield* split.push(chunk);
    split.end();
    return;
  }
  const split = new LineSplitter(file);
  for (const chunk of readChunks(file, chunkBytes)) yield* split.push(chunk);
  yield* split.end();
}
