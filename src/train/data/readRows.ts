/**
 * Reads a data file into rows that remember where they came from (for error messages):
 * `.json` (an array of objects), `.jsonl` (one object per line, blank lines skipped) and `.txt`
 * (one document per non-empty line, as LLaMA-Factory's `text` loader gives; leading/trailing
 * whitespace of a line is kept except the line break). It must never guess a format from content.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { DataError } from './DataError.js';

export interface Row {
  value: unknown;
  file: string;
  /** 1-based line (jsonl/txt) or 0-based array index (json). */
  row: number;
  rowKind: 'line' | 'index';
}

export type FileKind = 'json' | 'jsonl' | 'txt';

export function fileKind(file: string): FileKind {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.txt' || ext === '.text') return 'txt';
  throw new DataError(`unsupported file type '${ext}' (use .json, .jsonl or .txt)`, { file });
}

export function readRows(file: string, limit: number | null = null): Row[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataError(`cannot read: ${(err as Error).message}`, { file }, { cause: err });
  }
  const kind = fileKind(file);
  const rows: Row[] = [];
  const full = (): boolean => limit !== null && rows.length >= limit;
  if (kind === 'json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new DataError(`invalid JSON: ${(err as Error).message}`, { file }, { cause: err });
    }
    if (!Array.isArray(data)) throw new DataError('a .json dataset must be an array of objects', { file });
    for (let i = 0; i < data.length && !full(); i++) rows.push({ value: data[i], file, row: i, rowKind: 'index' });
    return rows;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && !full(); i++) {
    const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (line.trim().length === 0) continue;
    if (kind === 'txt') {
      rows.push({ value: { text: line }, file, row: i + 1, rowKind: 'line' });
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new DataError(`invalid JSON: ${(err as Error).message}`, { file, row: i + 1, rowKind: 'line' }, { cause: err });
    }
    rows.push({ value, file, row: i + 1, rowKind: 'line' });
  }
  return rows;
}
