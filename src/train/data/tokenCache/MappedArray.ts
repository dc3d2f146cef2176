/**
 * A typed array of a mapped file (u8, u16, i32 or f64 elements, little-endian as the host):
 * element reads and range reads, as views into the mapping where they lie in one segment.
 * Must never read outside the file (every index is checked against the length).
 */
import type { MappedFile } from '../../../engine/mappedFile.js';

export type ElementKind = 'u8' | 'u16' | 'i32' | 'f64';
const WIDTH: Record<ElementKind, number> = { u8: 1, u16: 2, i32: 4, f64: 8 };

type View = Uint8Array | Uint16Array | Int32Array | Float64Array;

function viewOf(kind: ElementKind, bytes: Uint8Array, count: number): View {
  const { buffer, byteOffset } = bytes;
  if (kind === 'u8') return bytes;
  // a range copied across a segment boundary starts at offset 0, a view at an element boundary
  if (kind === 'u16') return new Uint16Array(buffer, byteOffset, count);
  if (kind === 'i32') return new Int32Array(buffer, byteOffset, count);
  return new Float64Array(buffer, byteOffset, count);
}

export class MappedArray {
  readonly length: number;
  private readonly width: number;

  constructor(
    readonly file: MappedFile,
    readonly kind: ElementKind,
  ) {
    this.width = WIDTH[kind];
    this.length = file.size / this.width;
  }

  /** Elements [start, start + count). */
  read(start: number, count: number): View {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.length) {
      throw new RangeError(`${this.file.path}: elements [${start}, ${start + count}) outside the ${this.length} it holds`);
    }
    return viewOf(this.kind, this.file.bytes(start * this.width, (start + count) * this.width), count);
  }

  get(i: number): number {
    return this.read(i, 1)[0]!;
  }

  /** The first index in [lo, hi) whose element is > x (the array ascending there), else hi. */
  upperBound(x: number, lo = 0, hi = this.length): number {
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.get(mid) <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
