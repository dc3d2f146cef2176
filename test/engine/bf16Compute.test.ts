// bf16 compute (REFERENCE §6): flash attention with bf16 q/k/v, the LM head with bf16 operands and
// the bf16 model, against fp64 with the tolerances stated in fixtures/bf16ComputeChecks.ts, on
// this CPU's kernels and, in a child process with DNNL_MAX_CPU_ISA=AVX512_CORE, on the fallback of
// CPUs without AVX512-BF16. Also: bitwise determinism across thread counts, the bf16 weight copy
// following the masters (weightsChanged), smaller activations, and coded errors.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { readModelConfig } from '../../src/engine/modelConfig.js';
import { flashAttentionBackwardBf16, flashAttentionForwardBf16 } from '../../src/engine/ops/bf16Ops.js';
import { toBf16 } from '../../src/engine/ops/matmul.js';
import { configureThreads, defaultThreads } from '../../src/engine/threads.js';
import { packageRoot } from '../../src/util/packageRoot.js';
import type { CheckLine } from './fixtures/bf16Checks.js';
import { attentionCases, runBf16ComputeChecks } from './fixtures/bf16ComputeChecks.js';
import { makeCase } from './helpers/attentionReference.js';
import { runUnderIsa } from './helpers/isaChild.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bf16ComputeChecks.ts');

function report(t: Test, checks: CheckLine[]): void {
  for (const c of checks) t.ok(c.ok, `${c.name}: ${c.detail}`);
}

t.test('bf16 attention, LM head and model against fp64 on this CPU', async (t) => {
  const r = await runBf16ComputeChecks();
  t.comment(`bf16 attention runs ${r.impl} (AVX512-BF16 on this CPU: ${r.avx512bf16})`);
  t.equal(r.impl, r.avx512bf16 ? 'avx512bf16' : 'fp32-fallback', 'the attention kernel follows the CPU');
  report(t, r.checks);
});

t.test('the same checks with DNNL_MAX_CPU_ISA=AVX512_CORE (the path of a CPU without AVX512-BF16)', async (t) => {
  const r = await runUnderIsa<Awaited<ReturnType<typeof runBf16ComputeChecks>>>(t, fixture, 'AVX512_CORE');
  t.equal(r.impl, 'fp32-fallback', 'the attention widens to fp32');
  t.notOk(r.avx512bf16, 'no AVX512-BF16 kernels are used');
  report(t, r.checks);
});

async function attentionRun(sh: (typeof attentionCases)[number]) {
  const c = makeCase(sh, 3, 2);
  const q = await toBf16(c.q), k = await toBf16(c.k), v = await toBf16(c.v), dout = await toBf16(c.dout);
  const out = new Uint16Array(c.q.length), lse = new Float32Array(sh.H * sh.s);
  await flashAttentionForwardBf16(out, lse, q, k, v, sh);
  const g = { dq: new Float32Array(c.q.length), dk: new Float32Array(c.k.length), dv: new Float32Array(c.v.length) };
  await flashAttentionBackwardBf16(g, dout, q, k, v, out, lse, sh);
  return [out, lse, g.dq, g.dk, g.dv];
}

function differing(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let n = 0;
  for (let j = 0; j < a.length; j++) for (let i = 0; i < a[j]!.length; i++) if (!Object.is(a[j]![i], b[j]![i])) n++;
  return n;
}

t.test('bf16 attention and the bf16 model give the same bits on 1 and 2 threads', async (t) => {
  const cfg = await readModelConfig(join(packageRoot(), 'examples', 'models', 'tiny', 'config.json'));
  const s = 150;
  const tokens = Int32Array.from({ length: s }, (_, i) => (i * 31 + 7) % cfg.vocabSize);
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
  const input = { tokens, labels, normalizer: s - 1, docLens: Int32Array.of(90, 60) };
  const runModel = async () => {
    const m = await Model.create(cfg, { seed: 2, bf16: true });
    const r = await m.forwardBackward(input);
    return [Float64Array.of(r.loss), Float32Array.from(m.grads)];
  };
  try {
    configureThreads({ threads: 1 });
    const one = [...(await attentionRun(attentionCases[0]!)), ...(await runModel())];
    configureThreads({ threads: 2 });
    const two = [...(await attentionRun(attentionCases[0]!)), ...(await runModel())];
    t.equal(differing(one, two), 0, 'no element differs');
  } finally {
    configureThreads({ threads: defaultThreads() });
  }
});

t.test('the bf16 weight copy follows the fp32 masters', async (t) => {
  const cfg = await readModelConfig(join(packageRoot(), 'examples', 'models', 'tiny', 'config.json'));
  const s = 64;
  const tokens = Int32Array.from({ length: s }, (_, i) => (i * 13 + 1) % cfg.vocabSize);
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
  const input = { tokens, labels, normalizer: s - 1 };
  const a = await Model.create(cfg, { seed: 4, bf16: true });
  const b = await Model.create(cfg, { seed: 9, bf16: true });
  t.ok(a.bf16 && b.bf16, 'both models are bf16');
  const lossA = (await a.forward(input)).loss;
  await a.backward();
  const before = (await b.forward(input)).loss;
  await b.backward();
  t.not(before, lossA, 'different seeds, different losses');
  // Writing the masters in place, as a load or the optimizer does, then announcing it.
  b.params.set(a.params);
  b.weightsChanged();
  const after = (await b.forward(input)).loss;
  await b.backward();
  t.equal(after, lossA, 'the next forward computes with the new weights (bitwise the same loss)');
  // trainable.updated is the optimizer's way of saying so.
  b.params.set(new Float32Array(b.params.length).map((_, i) => Math.sin(i) * 0.02));
  b.trainable.updated?.();
  const third = (await b.forward(input)).loss;
  await b.backward();
  t.not(third, lossA, 'trainable.updated() refreshes the copy too');
  const f32 = await Model.create(cfg, { seed: 4 });
  await f32.forward({ ...input, tokens: tokens.slice(), labels: labels.slice() });
  t.ok(a.activationBytes < f32.activationBytes, `bf16 activations ${a.activationBytes} B < fp32 ${f32.activationBytes} B`);
  a.setBf16(false);
  t.notOk(a.bf16, 'switched back to fp32');
  const back = (await a.forward(input)).loss;
  t.equal(back, (await f32.forward(input)).loss, 'an fp32 model again: bitwise the fp32 loss');
});

t.test('bf16 kernels refuse bad arguments with coded errors', async (t) => {
  const sh = { s: 4, H: 1, Hkv: 1, d: 3 };
  const u = new Uint16Array(12), lse = new Float32Array(4);
  await t.rejects(flashAttentionForwardBf16(u, lse, u, u, u, sh), { code: 'ERR_SHAPE' }, 'odd head dim');
  const sh2 = { s: 4, H: 1, Hkv: 1, d: 2 };
  await t.rejects(flashAttentionForwardBf16(new Uint16Array(8), lse, new Float32Array(8) as unknown as Uint16Array, new Uint16Array(8), new Uint16Array(8), sh2), { code: 'ERR_DTYPE' }, 'fp32 where bf16 bits are expected');
  await t.rejects(flashAttentionForwardBf16(new Uint16Array(7), lse, new Uint16Array(8), new Uint16Array(8), new Uint16Array(8), sh2), { code: 'ERR_SHAPE' }, 'wrong length');
  const g = { dq: new Float32Array(8), dk: new Float32Array(8), dv: new Float32Array(8) };
  await t.rejects(flashAttentionBackwardBf16(g, new Uint16Array(8), new Uint16Array(8), new Uint16Array(8), new Uint16Array(8), new Uint16Array(8), new Float32Array(3), sh2), { code: 'ERR_SHAPE' }, 'lse of the wrong length');
});
