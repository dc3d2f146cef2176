// Safetensors reader/writer: round trip, F16/BF16 conversion (bytes written by hand here), and
// every malformed-file case giving ERR_SAFETENSORS (naming file and tensor) or ERR_FILE.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../src/engine/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'ua-safetensors-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a safetensors file from raw parts (header object + data bytes). */
function rawFile(name: string, header: unknown, data: Uint8Array, lenOverride?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, Buffer.from(data)]));
  return path;
}

// IEEE half decoded from its definition (independent of the native converter).
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

t.test('F32 write/read round trip keeps names, shapes, metadata and bits', async (t) => {
  const a = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 1e3);
  const b = Float32Array.from([Math.PI, -0, 1e-40, 3.4e38, -1.5]);
  const file = join(dir, 'rt.safetensors');
  await writeSafetensors(file, [
    { name: 'model.a', shape: [3, 4], data: a },
    { name: 'lm_head.weight', shape: [5], data: b },
  ], { format: 'pt' });
  const bytes = readFileSync(file);
  const hlen = Number(bytes.readBigUInt64LE(0));
  t.equal((8 + hlen) % 8, 0, 'data section is 8-byte aligned');
  const h = await readSafetensorsHeader(file);
  t.same(h.metadata, { format: 'pt' });
  t.same(h.tensors.get('model.a')?.shape, [3, 4]);
  t.equal(h.tensors.get('model.a')?.dtype, 'F32');
  const { tensors } = await readSafetensors(file);
  t.same([...tensors.keys()], ['model.a', 'lm_head.weight']);
  t.ok(Buffer.from(tensors.get('model.a')!.data.buffer).equals(Buffer.from(a.buffer)), 'model.a bitwise equal');
  t.ok(Buffer.from(tensors.get('lm_head.weight')!.data.buffer).equals(Buffer.from(b.buffer)), 'lm_head.weight bitwise equal (incl. -0 and denormal)');
  const out = new Float32Array(5);
  await readTensorF32(h, 'lm_head.weight', out);
  t.equal(out[0], b[0], 'reads into a caller buffer');
  await t.rejects(readTensorF32(h, 'lm_head.weight', new Float32Array(4)), { code: 'ERR_SHAPE' }, 'destination of the wrong size');
});

t.test('F16 and BF16 tensors convert exactly to F32', async (t) => {
  const halves = [0x0000, 0x8000, 0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x7c00, 0xfc00, 0x7e00];
  const bf = [0x0000, 0x3f80, 0xc040, 0x4049, 0x0001, 0x7f7f, 0xff80, 0x7fc0, 0xbeef];
  const data = new Uint8Array(2 * (halves.length + bf.length));
  const dv = new DataView(data.buffer);
  halves.forEach((h, i) => dv.setUint16(2 * i, h, true));
  bf.forEach((h, i) => dv.setUint16(2 * (halves.length + i), h, true));
  const file = rawFile('half.safetensors', {
    h: { dtype: 'F16', shape: [halves.length], data_offsets: [0, 2 * halves.length] },
    b: { dtype: 'BF16', shape: [bf.length], data_offsets: [2 * halves.length, data.length] },
  }, data);
  const { tensors } = await readSafetensors(file);
  const h = tensors.get('h')!.data;
  const want = halves.map(halfValue);
  let bad = 0;
  h.forEach((x, i) => { if (!(Object.is(x, Math.fround(want[i]!)) || (Number.isNaN(x) && Number.isNaN(want[i]!)))) bad++; });
  t.equal(bad, 0, `F16: ${h.length} values (zeros, max 65504, subnormals, inf, nan) exact: got [${[...h].join(', ')}]`);
  const b = tensors.get('b')!.data;
  const f = new DataView(new ArrayBuffer(4));
  let badB = 0;
  b.forEach((x, i) => {
    f.setUint32(0, bf[i]! << 16);
    const w = f.getFloat32(0);
    if (!(Object.is(x, w) || (Number.isNaN(x) && Number.isNaN(w)))) badB++;
  });
  t.equal(badB, 0, `BF16: ${b.length} values exact: got [${[...b].join(', ')}]`);
  t.equal(b[1], 1, 'bf16 0x3f80 is 1');
  t.equal(b[2], -3, 'bf16 0xc040 is -3');
  t.equal(h[2], 1, 'f16 0x3c00 is 1');
  t.equal(h[4], 65504, 'f16 0x7bff is 65504');

  // A larger tensor exercises the parallel path.
  const n = 200_000;
  const big = new Uint8Array(2 * n);
  const bdv = new DataView(big.buffer);
  for (let i = 0; i < n; i++) bdv.setUint16(2 * i, (0x3c00 + (i % 1024)) & 0xffff, true);
  const bigFile = rawFile('bighalf.safetensors', { x: { dtype: 'F16', shape: [n], data_offsets: [0, 2 * n] } }, big);
  const x = (await readSafetensors(bigFile)).tensors.get('x')!.data;
  let maxErr = 0;
  for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(x[i]! - (1 + (i % 1024) / 1024)));
  t.equal(maxErr, 0, `200k F16 values exact (max |diff| ${maxErr})`);
});

t.test('malformed files give ERR_SAFETENSORS naming the file and tensor; missing files ERR_FILE', async (t) => {
  const good = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
  const data = new Uint8Array(16);
  await t.rejects(readSafetensorsHeader(join(dir, 'nope.safetensors')), { code: 'ERR_FILE' }, 'nonexistent file');
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, Buffer.from([1, 2, 3]));
  await t.rejects(readSafetensorsHeader(tiny), { code: 'ERR_SAFETENSORS', message: /tiny\.safetensors.*truncated/ }, 'shorter than 8 bytes');
  await t.rejects(readSafetensorsHeader(rawFile('hlen.safetensors', good, data, 10_000n)), { code: 'ERR_SAFETENSORS', message: /truncated: header length/ }, 'header length beyond the file');
  const full = readFileSync(rawFile('full.safetensors', good, data));
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, full.subarray(0, full.length - 4));
  await t.rejects(readSafetensorsHeader(cut), { code: 'ERR_SAFETENSORS', message: /cut\.safetensors: tensor w: data_offsets.*out of range/ }, 'truncated data');
  const notJson = Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{abc}')]);
  const nj = join(dir, 'notjson.safetensors');
  writeFileSync(nj, notJson);
  await t.rejects(readSafetensorsHeader(nj), { code: 'ERR_SAFETENSORS', message: /bad header/ }, 'header is not JSON');
  await t.rejects(readSafetensorsHeader(rawFile('arr.safetensors', [1, 2], data)), { code: 'ERR_SAFETENSORS', message: /bad header/ }, 'header is not an object');
  await t.rejects(readSafetensorsHeader(rawFile('dt.safetensors', { w: { dtype: 'Q4', shape: [4], data_offsets: [0, 16] } }, data)), { code: 'ERR_SAFETENSORS', message: /tensor w: unknown dtype/ }, 'unknown dtype');
  await t.rejects(readSafetensorsHeader(rawFile('mm.safetensors', { w: { dtype: 'F32', shape: [3, 2], data_offsets: [0, 16] } }, data)), { code: 'ERR_SAFETENSORS', message: /tensor w: shape \[3, 2\].*24 bytes.*16/ }, 'shape/bytes mismatch');
  await t.rejects(readSafetensorsHeader(rawFile('neg.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [8, 4] } }, data)), { code: 'ERR_SAFETENSORS', message: /tensor w: data_offsets/ }, 'begin > end');
  await t.rejects(readSafetensorsHeader(rawFile('shp.safetensors', { w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, data)), { code: 'ERR_SAFETENSORS', message: /tensor w: shape/ }, 'negative dimension');
  const i32 = await readSafetensorsHeader(rawFile('i32.safetensors', { w: { dtype: 'I32', shape: [4], data_offsets: [0, 16] } }, data));
  await t.rejects(readTensorF32(i32, 'w'), { code: 'ERR_SAFETENSORS', message: /tensor w: dtype I32 cannot be loaded/ }, 'non-float dtype');
  await t.rejects(readTensorF32(i32, 'absent'), { code: 'ERR_SAFETENSORS', message: /tensor absent: not in the file/ }, 'absent tensor');
  await t.rejects(writeSafetensors(join(dir, 'w.safetensors'), [{ name: 'a', shape: [3], data: new Float32Array(2) }]), { code: 'ERR_SHAPE' }, 'writer: shape/data mismatch');
  await t.rejects(writeSafetensors(join(dir, 'w.safetensors'), [{ name: 'a', shape: [1], data: new Float32Array(1) }, { name: 'a', shape: [1], data: new Float32Array(1) }]), { code: 'ERR_ARG' }, 'writer: duplicate name');
});

t.test('strict layout: offsets in order, contiguous, non-overlapping, covering the data exactly; a bounded header', async (t) => {
  const f32 = (begin: number, n: number) => ({ dtype: 'F32', shape: [n], data_offsets: [begin, begin + 4 * n] });
  const data = new Uint8Array(32);
  // listed out of order but tiling the data exactly: accepted, each tensor at its own offsets
  const ok = await readSafetensorsHeader(rawFile('order.safetensors', { b: f32(16, 4), a: f32(0, 4) }, data));
  t.same([...ok.tensors.values()].map((e) => [e.name, e.begin - ok.dataStart, e.end - ok.dataStart]), [['b', 16, 32], ['a', 0, 16]]);
  const z = await readSafetensorsHeader(rawFile('zero.safetensors', { a: f32(0, 8), e: { dtype: 'F32', shape: [0], data_offsets: [32, 32] } }, data));
  t.equal(z.tensors.get('e')!.numel, 0, 'an empty tensor at the end is fine');
  await t.rejects(readSafetensorsHeader(rawFile('overlap.safetensors', { a: f32(0, 6), b: f32(16, 4) }, data)), { code: 'ERR_SAFETENSORS', message: /overlap\.safetensors: tensor b: data_offsets \[16, 32\] overlap tensor a \[0, 24\]/ }, 'overlap');
  await t.rejects(readSafetensorsHeader(rawFile('same.safetensors', { a: f32(0, 8), b: f32(0, 8) }, data)), { code: 'ERR_SAFETENSORS', message: /tensor b: data_offsets \[0, 32\] overlap tensor a \[0, 32\]/ }, 'two names over the same bytes');
  await t.rejects(readSafetensorsHeader(rawFile('gap.safetensors', { a: f32(0, 2), b: f32(16, 4) }, data)), { code: 'ERR_SAFETENSORS', message: /tensor b: data_offsets \[16, 32\] leave a gap of 8 bytes after tensor a \[0, 8\]/ }, 'gap between tensors');
  await t.rejects(readSafetensorsHeader(rawFile('late.safetensors', { a: f32(8, 6) }, data)), { code: 'ERR_SAFETENSORS', message: /tensor a: data_offsets \[8, 32\] leave a gap of 8 bytes after the start of the data section/ }, 'first tensor not at 0');
  await t.rejects(readSafetensorsHeader(rawFile('tail.safetensors', { a: f32(0, 4) }, data)), { code: 'ERR_SAFETENSORS', message: /cover 16 of the data section's 32 bytes \(16 trailing bytes after tensor a \[0, 16\]/ }, 'trailing bytes');
  await t.rejects(readSafetensorsHeader(rawFile('none.safetensors', {}, data)), { code: 'ERR_SAFETENSORS', message: /cover 0 of the data section's 32 bytes.*after the header/ }, 'data but no tensors');
  await t.rejects(readSafetensorsHeader(rawFile('huge.safetensors', { a: { dtype: 'F32', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 32] } }, data)), { code: 'ERR_SAFETENSORS', message: /tensor a: shape .* too large/ }, 'a shape whose byte count is not an exact integer');
  await t.rejects(readSafetensorsHeader(rawFile('meta.safetensors', { __metadata__: { format: 1 }, a: f32(0, 8) }, data)), { code: 'ERR_SAFETENSORS', message: /__metadata__ value of "format" must be a string/ }, 'non-string metadata');
  // a header length over the bound is refused before anything is allocated, even in a short file
  await t.rejects(readSafetensorsHeader(rawFile('hbig.safetensors', { a: f32(0, 8) }, data, 100_000_001n)), { code: 'ERR_SAFETENSORS', message: /header length 100000001 exceeds the limit of 100000000 bytes/ }, 'header bound');
});
