/**
 * Safetensors files: header parsing with full validation, loading F32/F16/BF16 tensors as F32
 * (conversion runs in native code off the main thread), and writing F32 files with HF tensor
 * names. Format: 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}), then the
 * raw data (offsets relative to its start). Must never trust a header: every offset and size is
 * checked against the file before a byte is read (ERR_SAFETENSORS naming the file and tensor).
 */
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { native } from './native.js';
import { EngineError } from './errors.js';

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
  F8_E4M3: 1, F8_E5M2: 1,
};

/** Dtypes this engine converts to F32 on load. */
export const LOADABLE_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type LoadableDType = (typeof LOADABLE_DTYPES)[number];

function isLoadable(dtype: string): dtype is LoadableDType {
  return (LOADABLE_DTYPES as readonly string[]).includes(dtype);
}

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Absolute offset of the data section. */
  dataStart: number;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

export interface NamedTensor {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

function bad(file: string, msg: string): never {
  throw new EngineError('ERR_SAFETENSORS', `${file}: ${msg}`);
}

async function openFile(file: string, flags = 'r'): Promise<FileHandle> {
  try {
    return await open(file, flags);
  } catch (e) {
    throw new EngineError('ERR_FILE', `cannot open ${file}: ${(e as Error).message}`, { cause: e });
  }
}

async function readExactly(fh: FileHandle, file: string, into: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    // fs reads are limited to 2 GiB per call; real embedding tables can exceed that.
    const { bytesRead } = await fh.read(into, done, Math.min(into.byteLength - done, 1 << 30), position + done);
    if (bytesRead === 0) bad(file, `truncated while reading ${what}`);
    done += bytesRead;
  }
}

/** Parses and validates a header already read (exposed for tests). */
export function parseHeader(file: string, json: string, fileSize: number, dataStart: number): SafetensorsHeader {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch (e) {
    bad(file, `bad header: invalid JSON (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) bad(file, 'bad header: expected a JSON object');
  const dataLen = fileSize - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(obj as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad(file, 'bad header: __metadata__ must be an object');
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) bad(file, `tensor ${name}: expected an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) bad(file, `tensor ${name}: unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      bad(file, `tensor ${name}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isInteger(x) || x < 0) || off[0] > off[1]) {
      bad(file, `tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const [b, en] = off as [number, number];
    if (en > dataLen) bad(file, `tensor ${name}: data_offsets [${b}, ${en}] out of range (the data section holds ${dataLen} bytes; truncated file?)`);
    const shape = e.shape as number[];
    const numel = shape.reduce((a, x) => a * x, 1);
    const want = numel * DTYPE_BYTES[e.dtype]!;
    if (en - b !== want) bad(file, `tensor ${name}: shape [${shape.join(', ')}] of ${e.dtype} needs ${want} bytes, data_offsets give ${en - b}`);
    tensors.set(name, { name, dtype: e.dtype, shape: [...shape], numel, begin: dataStart + b, end: dataStart + en });
  }
  return { file, fileSize, dataStart, tensors, metadata };
}

/** Reads and validates the header of a .safetensors file. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await openFile(file);
  try {
    return await readHeaderFrom(fh, file);
  } finally {
    await fh.close();
  }
}

async function readHeaderFrom(fh: FileHandle, file: string): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  if (size < 8) bad(file, `truncated: ${size} bytes, too short for the 8-byte header length`);
  const lenBuf = new Uint8Array(8);
  await readExactly(fh, file, lenBuf, 0, 'the header length');
  const len = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (len > BigInt(size - 8)) bad(file, `truncated: header length ${len} exceeds the ${size - 8} bytes after it`);
  if (len > 100_000_000n) bad(file, `bad header: header length ${len} is implausibly large`);
  const json = new Uint8Array(Number(len));
  await readExactly(fh, file, json, 8, 'the header');
  return parseHeader(file, new TextDecoder().decode(json), size, 8 + Number(len));
}

/**
 * Reads tensor `name` as F32 into `out` (allocated when omitted; must hold exactly numel floats).
 * F16 and BF16 are converted natively on the libuv pool.
 */
export async function readTensorF32(header: SafetensorsHeader, name: string, out?: Float32Array, fh?: FileHandle): Promise<Float32Array> {
  const e = header.tensors.get(name);
  if (!e) bad(header.file, `tensor ${name}: not in the file`);
  const dtype = e.dtype;
  if (!isLoadable(dtype)) bad(header.file, `tensor ${name}: dtype ${e.dtype} cannot be loaded (expected F32, F16 or BF16)`);
  const dst = out ?? new Float32Array(e.numel);
  if (dst.length !== e.numel) {
    throw new EngineError('ERR_SHAPE', `${header.file}: tensor ${name}: destination holds ${dst.length} floats, the tensor has ${e.numel}`);
  }
  const own = !fh;
  const handle = fh ?? (await openFile(header.file));
  try {
    if (dtype === 'F32') {
      // Straight into the destination's memory (the host is little-endian like the format).
      await readExactly(handle, header.file, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), e.begin, `tensor ${name}`);
    } else {
      const raw = new Uint8Array(e.end - e.begin);
      await readExactly(handle, header.file, raw, e.begin, `tensor ${name}`);
      await native().convertToF32(dst, raw, dtype);
    }
  } finally {
    if (own) await handle.close();
  }
  return dst;
}

/** Loads every tensor of a file as F32. */
export async function readSafetensors(file: string): Promise<{ tensors: Map<string, NamedTensor>; metadata: Record<string, string> }> {
  const fh = await openFile(file);
  try {
    const header = await readHeaderFrom(fh, file);
    const tensors = new Map<string, NamedTensor>();
    for (const e of header.tensors.values()) {
      tensors.set(e.name, { name: e.name, shape: e.shape, data: await readTensorF32(header, e.name, undefined, fh) });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    await fh.close();
  }
}

// Appends all of `bytes`, in pieces of at most 1 GiB (fs calls are limited to 2 GiB).
async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
    done += bytesWritten;
  }
}

/** A tensor to write: F32 data, or BF16 bit patterns (a Uint16Array, e.g. from toBf16). */
export interface WritableTensor {
  name: string;
  shape: readonly number[];
  data: Float32Array | Uint16Array;
}

/**
 * Writes F32 (Float32Array) and BF16 (Uint16Array) tensors, in the given order, to `file`,
 * through a temporary file renamed at the end so a torn write never leaves a valid-looking file.
 */
export async function writeSafetensors(file: string, tensors: readonly WritableTensor[], metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new EngineError('ERR_ARG', `writeSafetensors: duplicate tensor name ${t.name}`);
    names.add(t.name);
    const numel = t.shape.reduce((a, x) => a * x, 1);
    const bf16 = t.data instanceof Uint16Array;
    if (!(bf16 || t.data instanceof Float32Array) || t.data.length !== numel) {
      throw new EngineError('ERR_SHAPE', `writeSafetensors: tensor ${t.name}: shape [${t.shape.join(', ')}] needs ${numel} ${bf16 ? 'bf16 values' : 'floats'}`);
    }
    const bytes = numel * (bf16 ? 2 : 4);
    header[t.name] = { dtype: bf16 ? 'BF16' : 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);  // data section 8-byte aligned
  const jsonBytes = Buffer.from(json, 'utf8');
  const lenBytes = Buffer.alloc(8);
  lenBytes.writeBigUInt64LE(BigInt(jsonBytes.length));
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await openFile(tmp, 'w');
  try {
    await writeAll(fh, lenBytes);
    await writeAll(fh, jsonBytes);
    for (const t of tensors) await writeAll(fh, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  await rename(tmp, file);
}
