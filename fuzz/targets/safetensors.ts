/**
 * Fuzz target `safetensors`: the header of a .safetensors file (engine/safetensors.ts), fed the
 * whole file as bytes: the 8-byte little-endian header length, the JSON header, the data. Only
 * an EngineError with code ERR_SAFETENSORS is a documented refusal. A header the parser accepts
 * must describe tensors that lie inside the file's data section with exactly dtype x shape
 * bytes each, and metadata of strings only, as the format says.
 */
import { EngineError } from '../../src/engine/errors.js';
import { parseSafetensorsBytes } from '../../src/engine/safetensors.js';
import { check, expectOnly } from './harness.js';

const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
  F8_E4M3: 1, F8_E5M2: 1,
};

const refused = (e: unknown) => e instanceof EngineError && e.code === 'ERR_SAFETENSORS';

export function fuzz(data: Buffer): void {
  const h = expectOnly(() => parseSafetensorsBytes('fuzz.safetensors', data), refused);
  if (!h) return;
  check(h.fileSize === data.length && h.dataStart >= 8 && h.dataStart <= h.fileSize, `bad sizes: file ${h.fileSize}, data at ${h.dataStart}`);
  for (const [name, e] of h.tensors) {
    check(name !== '__metadata__' && e.name === name, `tensor named ${JSON.stringify(name)} listed as ${JSON.stringify(e.name)}`);
    check(Object.hasOwn(DTYPE_BYTES, e.dtype), `tensor ${name}: accepted dtype ${JSON.stringify(e.dtype)}`);
    check(e.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `tensor ${name}: accepted shape ${JSON.stringify(e.shape)}`);
    const numel = e.shape.reduce((a, d) => a * d, 1);
    check(e.numel === numel, `tensor ${name}: numel ${e.numel} for shape ${JSON.stringify(e.shape)}`);
    check(h.dataStart <= e.begin && e.begin <= e.end && e.end <= h.fileSize, `tensor ${name}: bytes [${e.begin}, ${e.end}) outside the data section [${h.dataStart}, ${h.fileSize})`);
    check(e.end - e.begin === numel * DTYPE_BYTES[e.dtype]!, `tensor ${name}: ${e.end - e.begin} bytes for ${numel} x ${e.dtype}`);
  }
  for (const [k, v] of Object.entries(h.metadata)) check(typeof v === 'string', `metadata ${JSON.stringify(k)} is a ${typeof v}, not a string`);
}
