// bf16: fp32 <-> bf16 conversions (round to nearest even, NaN / Inf / denormal rules) bitwise
// against a JavaScript reference, and bf16 x bf16 -> fp32 products against fp64 with stated
// tolerances; on this CPU's path and, in child processes with DNNL_MAX_CPU_ISA lowered, on the
// paths of CPUs without AVX512-BF16 (oneDNN's emulation on AVX-512, fp32 products below that).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { matmulBf16, toBf16 } from '../../src/engine/ops/matmul.js';
import { runBf16Checks, type CheckLine } from './fixtures/bf16Checks.js';
import { runUnderIsa } from './helpers/isaChild.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bf16Checks.ts');

function report(t: Test, checks: CheckLine[]): void {
  for (const c of checks) t.ok(c.ok, `${c.name}: ${c.detail}`);
}

/** Runs the checks in a child process whose oneDNN (and our bf16 kernels) may use at most `isa`. */
function runChild(t: Test, isa: string): Promise<Awaited<ReturnType<typeof runBf16Checks>>> {
  return runUnderIsa(t, fixture, isa);
}

t.test('bf16 conversions and products on this CPU', async (t) => {
  const r = await runBf16Checks();
  t.comment(`${r.info.onednn}; bf16 conversions ${r.info.avx512bf16 ? 'AVX512-BF16' : 'portable'}; bf16 product implementation ${r.impl}`);
  report(t, r.checks);
});

// AVX512_CORE: AVX-512 without BF16 (oneDNN emulates bf16 products); AVX2: no bf16 kernels at
// all (the products widen to fp32). Both run on any x86-64 CPU that can run this addon.
for (const isa of ['AVX512_CORE', 'AVX2']) {
  t.test(`bf16 conversions and products with DNNL_MAX_CPU_ISA=${isa} (the path of a CPU without AVX512-BF16)`, async (t) => {
    const r = await runChild(t, isa);
    t.comment(`${r.info.onednn}; bf16 product implementation ${r.impl}`);
    t.notOk(r.info.avx512bf16, 'the bf16 conversions take the portable path');
    t.notMatch(r.impl, /bf16/, `the bf16 product does not use the AVX512-BF16 kernels (${r.impl})`);
    if (isa === 'AVX2') t.equal(r.impl, 'fp32-fallback', 'without AVX-512, bf16 products widen to fp32');
    report(t, r.checks);
  });
}

t.test('bf16 products refuse bad arguments with coded errors', async (t) => {
  const A = new Uint16Array(6), B = new Uint16Array(6), C = new Float32Array(4);
  await t.rejects(matmulBf16(C, A, B, 2, 2, 4), { code: 'ERR_SHAPE' }, 'wrong length');
  await t.rejects(matmulBf16(C, new Float32Array(6) as unknown as Uint16Array, B, 2, 2, 3), { code: 'ERR_DTYPE' }, 'fp32 where bf16 bits are expected');
  await t.rejects(matmulBf16(C, A, B, 2, -1, 3), { code: 'ERR_ARG' }, 'negative size');
  await t.rejects(toBf16(new Float32Array(3), { out: new Uint16Array(2) }), { code: 'ERR_SHAPE' }, 'conversion output of the wrong length');
});
