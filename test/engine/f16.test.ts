// fp32 -> IEEE half (toF16, native/src/kernels/f16.h) against the definition, checked through
// the exact half -> float decoding the loader uses (convertToF32 'F16'): every result is a
// nearest half to the input (its neighbours are not closer, compared in fp64), ties go to the
// even pattern, |x| >= 65520 becomes +-Inf, subnormal halves and signed zeros come out where
// they should, and NaN stays a quiet NaN of its sign. Inputs: every half and every midpoint
// between neighbouring halves, and 200k random floats over exponents -30..17.
import t from 'tap';
import { toF16 } from '../../src/engine/ops/f16.js';
import { native } from '../../src/engine/native.js';
import { lcg } from '../helpers/packedBatch.js';

async function decode(bits: Uint16Array): Promise<Float32Array> {
  const out = new Float32Array(bits.length);
  await native().convertToF32(out, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 'F16');
  return out;
}

/** Every finite non-negative half, ascending (0x0000 .. 0x7bff), decoded. */
async function positiveHalves(): Promise<Float32Array> {
  return decode(Uint16Array.from({ length: 0x7c00 }, (_, i) => i));
}

t.test('nearest half, ties to even, on every half, every midpoint and random floats', async (t) => {
  const halves = await positiveHalves();
  const xs: number[] = [];
  for (let i = 0; i < halves.length; i++) {
    xs.push(halves[i]!, -halves[i]!);
    if (i + 1 < halves.length) xs.push((halves[i]! + halves[i + 1]!) / 2); // exact in fp32 (12 significant bits)
  }
  const r = lcg(17);
  for (let i = 0; i < 200_000; i++) xs.push((r() < 0.5 ? -1 : 1) * (1 + r()) * 2 ** (Math.floor(r() * 48) - 30));
  const x = Float32Array.from(xs);
  const bits = await toF16(x);
  const v = await decode(bits);
  let bad = 0, ties = 0, oddTie = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    const h = bits[i]! & 0x7fff;
    if (a >= 65520) {
      if (h !== 0x7c00) bad++;
      continue;
    }
    if ((bits[i]! & 0x8000) !== (Math.sign(x[i]!) < 0 || Object.is(x[i], -0) ? 0x8000 : 0)) bad++;
    const err = Math.abs(a - Math.abs(v[i]!));
    const below = h > 0 ? Math.abs(a - halves[h - 1]!) : Infinity;
    const above = h + 1 < halves.length ? Math.abs(a - halves[h + 1]!) : Math.abs(a - 65536);
    if (err > below || err > above) bad++;
    if (err === below || err === above) {
      ties++;
      if (h & 1) oddTie++;
    }
  }
  t.equal(bad, 0, `${x.length} inputs: every result is a nearest half of the input's sign`);
  t.ok(ties >= 0x7bff, `${ties} exact ties (the 0x7bff midpoints of neighbouring halves, and any random tie)`);
  t.equal(oddTie, 0, 'every tie rounds to the even pattern');
});

t.test('edges: overflow, largest half, subnormals, zeros, NaN, Inf', async (t) => {
  const cases: [number, number][] = [
    [65504, 0x7bff], [65519.996, 0x7bff], [65520, 0x7c00], [-65520, 0xfc00], [1e10, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000],
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -25 * 1.0001, 0x0001], [3 * 2 ** -25, 0x0002],
    [-(2 ** -24), 0x8001], [2 ** -14 - 2 ** -25, 0x0400], [1e-10, 0x0000],
  ];
  const got = await toF16(Float32Array.from(cases.map((c) => c[0])));
  cases.forEach(([x, want], i) => t.equal(got[i], want, `${x} -> 0x${want.toString(16).padStart(4, '0')}`));
  const nan = await toF16(Float32Array.of(NaN, -NaN));
  t.ok((nan[0]! & 0x7e00) === 0x7e00 && (nan[0]! & 0x8000) === 0, 'NaN: a quiet NaN');
  const negNan = new Float32Array(new Uint32Array([0xffc00001]).buffer);
  const nn = await toF16(negNan);
  t.ok((nn[0]! & 0xfe00) === 0xfe00, 'a negative NaN keeps its sign');
  await t.rejects(toF16(new Float32Array(3), new Uint16Array(2)), { code: 'ERR_SHAPE' });
});
