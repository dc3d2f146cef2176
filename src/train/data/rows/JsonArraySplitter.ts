/**
 * Splits a `.json` dataset (one JSON array, LLaMA-Factory's usual layout) into the bytes of its
 * elements, chunk by chunk, without parsing the whole file: it tracks only nesting depth and
 * string/escape state, and holds at most the current element's bytes. So a 1 GB file never
 * becomes a 1 GB string; each element is parsed on its own later (JSON.parse also checks its
 * syntax in full). Structure errors name the file, the element index and the byte offset. A pure
 * function of the bytes (no I/O), so it can be fuzzed; it must never accept anything but one array.
 */
import { DataError } from '../DataError.js';
import { MAX_ROW_BYTES, type RawRow } from './RawRow.js';

const enum State {
  /** before the opening bracket */
  Start,
  /** after `[`: an element or `]` */
  First,
  /** after `,`: an element */
  Next,
  /** after an element: `,` or `]` */
  After,
  /** inside an element */
  Value,
  /** after the closing bracket: only whitespace */
  Done,
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Bytes that end a bare (number, true, false, null) top-level element. */
function endsBare(b: number): boolean {
  return isSpace(b) || b === 0x2c || b === 0x5d;
}

function show(b: number): string {
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, '0')}`;
}

export class JsonArraySplitter {
  private state = State.Start;
  private consumed = 0;
  private index = 0;
  // the element being read
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private valueStart = 0;
  private depth = 0;
  private inString = false;
  /** the element is a bare scalar (number, literal) rather than an object, array or string */
  private bare = false;
  /** backslashes right before the current position, inside a string */
  private backslashes = 0;

  constructor(
    readonly file: string,
    readonly maxRowBytes = MAX_ROW_BYTES,
  ) {}

  /** `row`: the element index to name (default the current one; null: none). */
  private fail(message: string, offset: number, row: number | null = this.index): never {
    throw new DataError(message, { file: this.file, ...(row !== null ? { row, rowKind: 'index' as const } : {}), offset });
  }

  /** The elements completed by `chunk` (views into it when they lie in it). */
  push(chunk: Uint8Array): RawRow[] {
    const out: RawRow[] = [];
    let i = 0;
    if (this.consumed === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;
    let valueFrom = this.state === State.Value ? 0 : -1;
    const n = chunk.length;
    while (i < n) {
      const b = chunk[i]!;
      switch (this.state) {
        case State.Start:
          if (isSpace(b)) { i++; continue; }
          if (b !== 0x5b) this.fail(`a .json dataset must be one JSON array of rows, found ${show(b)} instead of '['`, this.consumed + i, null);
          this.state = State.First;
          i++;
          continue;
        case State.First:
        case State.Next:
          if (isSpace(b)) { i++; continue; }
          if (b === 0x5d) {
            if (this.state === State.Next) this.fail(`expected an element after ',' (trailing comma)`, this.consumed + i);
            this.state = State.Done;
            i++;
            continue;
          }
          this.begin(b, this.consumed + i);
          valueFrom = i;
          // a bare scalar is scanned from its first byte; JSON.parse judges it later
          if (!this.bare) i++;
          continue;
        case State.After:
          if (isSpace(b)) { i++; continue; }
          if (b === 0x2c) { this.state = State.Next; i++; continue; }
          if (b === 0x5d) { this.state = State.Done; i++; continue; }
          this.fail(`expected ',' or ']' after element ${this.index - 1}, found ${show(b)}`, this.consumed + i, this.index - 1);
          break;
        case State.Done:
          if (isSpace(b)) { i++; continue; }
          this.fail(`unexpected ${show(b)} after the end of the array`, this.consumed + i, null);
          break;
        case State.Value: {
          const end = this.scanValue(chunk, i);
          if (end < 0) { i = n; continue; }
          this.emit(chunk.subarray(valueFrom, end), out);
          valueFrom = -1;
          i = end;
          continue;
        }
      }
    }
    if (this.state === State.Value && valueFrom >= 0) this.keep(chunk.subarray(valueFrom));
    this.consumed += n;
    return out;
  }

  /** Checks the array was closed (a truncated file is an error naming where it stopped). */
  end(): void {
    if (this.state === State.Start) this.fail('a .json dataset must be one JSON array of rows; the file holds none', this.consumed, null);
    // (a bare scalar runs to the end of the file when the array is never closed)
    const open = this.state === State.Value && !this.bare;
    if (this.state !== State.Done) this.fail(`the file ends inside the array (truncated?): ${open ? 'the element is not closed' : "no closing ']'"}`, this.consumed);
  }

  private begin(b: number, offset: number): void {
    this.state = State.Value;
    this.valueStart = offset;
    this.depth = 0;
    this.inString = false;
    this.backslashes = 0;
    this.bare = !(b === QUOTE || b === 0x7b || b === 0x5b);
    if (b === QUOTE) this.inString = true;
    else if (!this.bare) this.depth = 1;
  }

  /** Scans from `i` inside the current element; the index just past its end, or -1 when the chunk ends first. */
  private scanValue(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    while (i < n) {
      if (this.inString) {
        const q = chunk.indexOf(QUOTE, i);
        if (q < 0) {
          let k = n;
          while (k > i && chunk[k - 1] === BACKSLASH) k--;
          this.backslashes = k === i ? this.backslashes + (n - i) : n - k;
          return -1;
        }
        let k = q;
        while (k > i && chunk[k - 1] === BACKSLASH) k--;
        const run = q - k + (k === i ? this.backslashes : 0);
        this.backslashes = 0;
        i = q + 1;
        if (run % 2 === 1) continue; // an escaped quote
        this.inString = false;
        if (this.depth === 0) return i; // a top-level string element
        continue;
      }
      const b = chunk[i]!;
      if (this.bare) {
        if (endsBare(b)) return i;
        i++;
        continue;
      }
      if (b === QUOTE) {
        this.inString = true;
        this.backslashes = 0;
      } else if (b === 0x7b || b === 0x5b) this.depth++;
      else if (b === 0x7d || b === 0x5d) {
        this.depth--;
        if (this.depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }

  private keep(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.partBytes + bytes.length > this.maxRowBytes) {
      this.fail(`the element is longer than ${this.maxRowBytes} bytes, the most one row may hold`, this.valueStart);
    }
    this.parts.push(bytes);
    this.partBytes += bytes.length;
  }

  private emit(last: Uint8Array, out: RawRow[]): void {
    this.keep(last);
    let bytes: Uint8Array;
    if (this.parts.length === 1) bytes = this.parts[0]!;
    else {
      bytes = new Uint8Array(this.partBytes);
      let at = 0;
      for (const p of this.parts) {
        bytes.set(p, at);
        at += p.length;
      }
    }
    out.push({ bytes, row: this.index, rowKind: 'index', offset: this.valueStart });
    this.parts = [];
    this.partBytes = 0;
    this.index++;
    this.state = State.After;
  }
}
