/**
 * A whole file mapped read-only into this process (the native `mapFile`), as segments of at most
 * 1 GiB so every typed-array view stays within V8's limits however large the file. Used by the
 * token cache: every rank maps the same files, so a host holds one copy of the data in its page
 * cache instead of one per rank. Elements never straddle segments (segment sizes are multiples
 * of every element width). Must never hand out a view after `close()` (the buffers are detached).
 */
import { statSync } from 'node:fs';
import { EngineError } from './errors.js';
import { native } from './native.js';

/** Bytes per segment: a multiple of the page size and of 8 (the widest element). */
export const SEGMENT_BYTES = 2 ** 30;

export class MappedFile {
  readonly path: string;
  readonly size: number;
  private segments: ArrayBuffer[];
  private readonly segmentBytes: number;
  private closed = false;

  private constructor(path: string, size: number, segments: ArrayBuffer[], segmentBytes: number) {
    this.path = path;
    this.size = size;
    this.segments = segments;
    this.segmentBytes = segmentBytes;
  }

  static open(path: string, segmentBytes = SEGMENT_BYTES): MappedFile {
    if (!Number.isInteger(segmentBytes) || segmentBytes <= 0 || segmentBytes % 65536 !== 0) {
      throw new EngineError('ERR_ARG', `MappedFile: segmentBytes must be a positive multiple of 65536, got ${segmentBytes}`);
    }
    let size: number;
    try {
      size = statSync(path).size;
    } catch (e) {
      throw new EngineError('ERR_FILE', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
    }
    const segments: ArrayBuffer[] = [];
    try {
      for (let at = 0; at < size; at += segmentBytes) segments.push(native().mapFile(path, at, Math.min(segmentBytes, size - at)));
    } catch (e) {
      for (const s of segments) native().unmapFile(s);
      throw e;
    }
    return new MappedFile(path, size, segments, segmentBytes);
  }

  /**
   * Bytes [begin, end) of the file: a view into the mapping when they lie in one segment, else a
   * copy (rare: only a range across a 1 GiB boundary).
   */
  bytes(begin: number, end: number): Uint8Array {
    if (this.closed) throw new EngineError('ERR_STATE', `${this.path}: the mapping is closed`);
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin || end > this.size) {
      throw new EngineError('ERR_ARG', `${this.path}: byte range [${begin}, ${end}) is outside the file of ${this.size} bytes`);
    }
    if (begin === end) return new Uint8Array(0);
    const s0 = Math.floor(begin / this.segmentBytes);
    const s1 = Math.floor((end - 1) / this.segmentBytes);
    if (s0 === s1) return new Uint8Array(this.segments[s0]!, begin - s0 * this.segmentBytes, end - begin);
    const out = new Uint8Array(end - begin);
    for (let s = s0, at = begin; s <= s1; s++) {
      const segEnd = Math.min(end, (s + 1) * this.segmentBytes);
      out.set(new Uint8Array(this.segments[s]!, at - s * this.segmentBytes, segEnd - at), at - begin);
      at = segEnd;
    }
    return out;
  }

  /** Unmaps every segment now (views made before become detached). Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.segments) native().unmapFile(s);
    this.segments = [];
  }
}
