/**
 * Splits the bytes of a JSONL or text file into lines, chunk by chunk, holding at most one
 * unfinished line: memory stays bounded by the longest line (itself bounded by MAX_ROW_BYTES),
 * never by the file. Lines end at `\n`; a `\r` before it is dropped; a UTF-8 byte-order mark at
 * the start of the file is skipped; blank lines (only whitespace, as String.prototype.trim sees
 * it) are not emitted but keep their line numbers. A pure function of the bytes (no I/O), so it
 * can be fuzzed; it must never decode or parse a line.
 */
import { DataError } from '../DataError.js';
import { MAX_ROW_BYTES, type RawRow } from './RawRow.js';

const LF = 0x0a;
const CR = 0x0d;

function isAsciiSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/** Whether a line holds only whitespace; non-ASCII bytes are decoded only when nothing else decides. */
export function isBlankLine(bytes: Uint8Array): boolean {
  let nonAscii = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) nonAscii = true;
    else if (!isAsciiSpace(b)) return false;
  }
  return !nonAscii || new TextDecoder().decode(bytes).trim().length === 0;
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class LineSplitter {
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  /** Bytes of the file seen before the current chunk. */
  private consumed = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    readonly file: string,
    readonly maxRowBytes = MAX_ROW_BYTES,
  ) {}

  /**
   * The lines completed by `chunk`. The returned rows may be views into `chunk`: the caller must
   * not overwrite a chunk while it holds rows of it.
   */
  push(chunk: Uint8Array): RawRow[] {
    const out: RawRow[] = [];
    let at = 0;
    if (this.consumed === 0 && this.partBytes === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) {
      at = 3;
      this.lineStart = 3;
    }
    while (at < chunk.length) {
      const nl = chunk.indexOf(LF, at);
      if (nl < 0) {
        this.keep(chunk.subarray(at));
        break;
      }
      this.keep(chunk.subarray(at, nl));
      this.finish(out);
      at = nl + 1;
      this.line++;
      this.lineStart = this.consumed + at;
    }
    this.consumed += chunk.length;
    return out;
  }

  /** The last line when the file does not end with a line break. */
  end(): RawRow[] {
    const out: RawRow[] = [];
    if (this.partBytes > 0) this.finish(out);
    return out;
  }

  private keep(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.partBytes + bytes.length > this.maxRowBytes) {
      throw new DataError(`the line is longer than ${this.maxRowBytes} bytes, the most one row may hold (is this file really one JSON object per line?)`, {
        file: this.file,
        row: this.line,
        rowKind: 'line',
        offset: this.lineStart,
      });
    }
    this.parts.push(bytes);
    this.partBytes += bytes.length;
  }

  private finish(out: RawRow[]): void {
    let bytes = concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1);
    if (bytes.length === 0 || isBlankLine(bytes)) return;
    out.push({ bytes, row: this.line, rowKind: 'line', offset: this.lineStart });
  }
}
