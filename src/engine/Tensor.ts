/**
 * A minimal strided tensor over a typed array: enough to describe shapes, validate arguments
 * before they reach native code, and express views (slices, transposes) that the native kernels
 * refuse unless they are contiguous. It never copies unless asked (`contiguous()`).
 */
import { EngineError } from './errors.js';

export type DType = 'f32' | 'i32';
export type TypedData = Float32Array | Int32Array;

function dtypeOf(data: TypedData): DType {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Int32Array) return 'i32';
  throw new EngineError('ERR_DTYPE', 'tensor data must be a Float32Array or an Int32Array');
}

function defaultStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i]!;
  }
  return strides;
}

export class Tensor<T extends TypedData = TypedData> {
  readonly data: T;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;

  constructor(data: T, shape: readonly number[], strides?: readonly number[], offset = 0) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new EngineError('ERR_SHAPE', `invalid dimension ${d} in shape [${shape.join(', ')}]`);
    }
    this.dtype = dtypeOf(data);
    this.data = data;
    this.shape = [...shape];
    this.strides = strides ? [...strides] : defaultStrides(shape);
    this.offset = offset;
    if (!strides && offset === 0 && this.numel !== data.length) {
      throw new EngineError('ERR_SHAPE', `shape [${shape.join(', ')}] needs ${this.numel} elements, data has ${data.length}`);
    }
  }

  static zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return new Tensor(dtype === 'f32' ? new Float32Array(n) : new Int32Array(n), shape);
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  isContiguous(): boolean {
    const want = defaultStrides(this.shape);
    for (let i = 0; i < this.shape.length; i++) {
      if (this.shape[i]! > 1 && this.strides[i] !== want[i]) return false;
    }
    return true;
  }

  /** Swap two dimensions without copying (the result is usually not contiguous). */
  transpose(a: number, b: number): Tensor<T> {
    const shape = [...this.shape];
    const strides = [...this.strides];
    [shape[a], shape[b]] = [shape[b]!, shape[a]!];
    [strides[a], strides[b]] = [strides[b]!, strides[a]!];
    return new Tensor(this.data, shape, strides, this.offset);
  }

  /** Rows [start, end) of the first dimension, without copying. */
  slice(start: number, end: number): Tensor<T> {
    if (start < 0 || end > this.shape[0]! || start > end) {
      throw new EngineError('ERR_SHAPE', `slice [${start}, ${end}) outside dimension 0 of size ${this.shape[0]}`);
    }
    const shape = [end - start, ...this.shape.slice(1)];
    return new Tensor(this.data, shape, this.strides, this.offset + start * this.strides[0]!);
  }

  /** The typed array covering exactly this tensor's elements; throws ERR_LAYOUT for strided views. */
  contiguousData(what = 'tensor'): T {
    if (!this.isContiguous()) {
      throw new EngineError('ERR_LAYOUT', `${what}: expected a contiguous tensor, got a strided view (shape [${this.shape.join(', ')}], strides [${this.strides.join(', ')}]); call .contiguous() first`);
    }
    return this.data.subarray(this.offset, this.offset + this.numel) as T;
  }

  /** A contiguous copy (or this tensor when already contiguous). */
  contiguous(): Tensor<T> {
    if (this.isContiguous()) return this;
    const out = new (this.data.constructor as { new (n: number): T })(this.numel);
    const idx = new Array<number>(this.shape.length).fill(0);
    for (let i = 0; i < this.numel; i++) {
      let off = this.offset;
      for (let k = 0; k < idx.length; k++) off += idx[k]! * this.strides[k]!;
      out[i] = this.data[off]!;
      for (let k = idx.length - 1; k >= 0; k--) {
        if (++idx[k]! < this.shape[k]!) break;
        idx[k] = 0;
      }
    }
    return new Tensor(out, this.shape);
  }
}

/** Accepts a Tensor or a bare typed array; checks dtype, contiguity and the expected shape. */
export function expectData<T extends TypedData>(
  what: string,
  value: Tensor | TypedData,
  dtype: DType,
  shape: readonly number[],
): T {
  const want = shape.reduce((a, b) => a * b, 1);
  if (value instanceof Tensor) {
    if (value.dtype !== dtype) throw new EngineError('ERR_DTYPE', `${what}: expected dtype ${dtype}, got ${value.dtype}`);
    if (value.shape.length !== shape.length || value.shape.some((d, i) => d !== shape[i])) {
      throw new EngineError('ERR_SHAPE', `${what}: expected shape [${shape.join(', ')}], got [${value.shape.join(', ')}]`);
    }
    return value.contiguousData(what) as T;
  }
  const isF32 = value instanceof Float32Array;
  const isI32 = value instanceof Int32Array;
  if ((dtype === 'f32' && !isF32) || (dtype === 'i32' && !isI32)) {
    const got = (value as object)?.constructor?.name ?? typeof value;
    throw new EngineError('ERR_DTYPE', `${what}: expected ${dtype === 'f32' ? 'Float32Array' : 'Int32Array'}, got ${got}`);
  }
  if (value.length !== want) {
    throw new EngineError('ERR_SHAPE', `${what}: expected ${want} elements (shape [${shape.join(', ')}]), got ${value.length}`);
  }
  return value as T;
}
