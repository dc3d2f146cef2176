// The device seam on the CPU backend: which backend a rank gets from `device` and LOCAL_RANK
// (selectDevice, with the addon's answers as fakes), what this addon answers about CUDA, and the
// model's selection point: device cpu computes bitwise what the model computes without the option,
// and device cuda is refused with ERR_DEVICE, naming the cause, wherever it cannot run.
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cudaAvailability, deviceFacts, deviceProblem, localRankOf, selectDevice, type DeviceFacts } from '../../src/engine/device/index.js';
import { Model } from '../../src/engine/model/index.js';
import { readModelConfig } from '../../src/engine/modelConfig.js';
import type { CudaAvailability } from '../../src/engine/nativeBinding.js';
import { packedDocs } from '../helpers/packedBatch.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function facts(o: Partial<CudaAvailability> & { cudaModel?: boolean; localRank?: number; localWorld?: number } = {}): DeviceFacts {
  const { cudaModel = true, localRank = 0, localWorld = 1, ...a } = o;
  return {
    availability: { built: true, devices: 0, reason: '', runtimeVersion: 13000, driverVersion: 13000, arch: 'sm_90', ...a },
    cudaModel,
    localRank,
    localWorld,
  };
}

t.test('selectDevice: the default is cuda only where a GPU is visible and the CUDA model is bound', async (t) => {
  t.equal(selectDevice(null, facts({ devices: 0, reason: 'no driver' })).kind, 'cpu');
  t.equal(selectDevice(null, facts({ built: false, devices: 0 })).kind, 'cpu');
  t.equal(selectDevice(null, facts({ devices: 2, cudaModel: false })).kind, 'cpu');
  t.match(selectDevice(null, facts({ devices: 0 })).reason, /no GPU visible/);
  const c = selectDevice(null, facts({ devices: 2, localRank: 1, localWorld: 2 }));
  t.same({ kind: c.kind, index: c.index, shared: c.shared }, { kind: 'cuda', index: 1, shared: false });
  t.same(selectDevice('cpu', facts({ devices: 8 })), { kind: 'cpu', index: 0, shared: false, reason: 'device: cpu' });
});

t.test('selectDevice: LOCAL_RANK picks the GPU; more local ranks than GPUs share them', async (t) => {
  const picks = [0, 1, 2, 3].map((r) => selectDevice('cuda', facts({ devices: 2, localRank: r, localWorld: 4 })));
  t.same(picks.map((p) => p.index), [0, 1, 0, 1]);
  t.ok(picks.every((p) => p.shared), 'four ranks on two GPUs share them');
  t.equal(selectDevice('cuda', facts({ devices: 1, localRank: 1, localWorld: 2 })).index, 0, 'SP 2 on one GPU: both ranks on GPU 0');
});

t.test('selectDevice: device cuda that cannot run is ERR_DEVICE naming the cause and the fix', async (t) => {
  const cases: [DeviceFacts, RegExp][] = [
    [facts({ built: false, reason: 'built without nvcc' }), /not compiled into the native addon: built without nvcc.*device: cpu/],
    [facts({ devices: 0, reason: 'cudaErrorNoDevice' }), /no CUDA device is visible.*cudaErrorNoDevice.*device: cpu/],
    [facts({ devices: 1, cudaModel: false }), /binds the CUDA kernels but not yet the CUDA model.*device: cpu/],
  ];
  for (const [f, re] of cases) {
    t.throws(() => selectDevice('cuda', f), { code: 'ERR_DEVICE', message: re });
    t.match(deviceProblem('cuda', f), { message: String, fix: /device: cpu/ });
  }
  t.equal(deviceProblem('cpu', facts({ built: false })), undefined, 'cpu never depends on CUDA');
  t.equal(deviceProblem('cuda', facts({ devices: 1 })), undefined);
});

t.test('localRankOf: LOCAL_RANK / LOCAL_WORLD_SIZE with defaults and clear errors', async (t) => {
  t.same(localRankOf({}), { localRank: 0, localWorld: 1 });
  t.same(localRankOf({ LOCAL_RANK: '3', LOCAL_WORLD_SIZE: '4' }), { localRank: 3, localWorld: 4 });
  t.throws(() => localRankOf({ LOCAL_RANK: 'x' }), { code: 'ERR_DEVICE', message: /LOCAL_RANK="x": expected a whole number >= 0/ });
  t.throws(() => localRankOf({ LOCAL_WORLD_SIZE: '0' }), { code: 'ERR_DEVICE', message: /LOCAL_WORLD_SIZE/ });
});

t.test('this addon: CUDA is compiled in exactly when setup.sh built native/cuda; no GPU is an answer', async (t) => {
  const a = cudaAvailability();
  t.equal(a.built, existsSync(`${root}native/build/cuda/libua_cuda.a`), 'built <=> libua_cuda.a was linked');
  if (a.built) t.equal(a.arch, 'sm_90');
  t.equal(a.devices === 0, a.reason.length > 0, 'a reason exactly when no device is visible');
  t.comment(`CUDA: built ${a.built}, devices ${a.devices}${a.reason ? ` (${a.reason})` : ''}`);
  const f = deviceFacts({ LOCAL_RANK: '0' });
  t.equal(f.cudaModel, false, 'no CUDA model is bound yet');
  t.equal(selectDevice(null, f).kind, 'cpu', 'the default here is cpu');
});

t.test('Model: device cpu computes bitwise what the model computes without the option; cuda is refused', async (t) => {
  const cfg = await readModelConfig(`${root}examples/models/tiny/config.json`);
  const batch = { ...packedDocs(cfg.vocabSize, [9, 7], 5), normalizer: 16 };
  const run = async (m: Model) => {
    await m.zeroGrad();
    const r = await m.forwardBackward(batch);
    return { loss: r.loss, params: Float32Array.from(m.params), grads: Float32Array.from(m.grads) };
  };
  const plain = await Model.create(cfg, { seed: 3 });
  const cpu = await Model.create(cfg, { seed: 3, device: 'cpu' });
  const auto = await Model.create(cfg, { seed: 3, device: null });
  const [a, b, c] = [await run(plain), await run(cpu), await run(auto)];
  t.equal(b.loss, a.loss, 'same loss (device cpu)');
  t.equal(c.loss, a.loss, 'same loss (device unset: cpu here)');
  t.ok(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer)) && Buffer.from(c.params.buffer).equals(Buffer.from(a.params.buffer)), 'bitwise the same parameters');
  t.ok(Buffer.from(b.grads.buffer).equals(Buffer.from(a.grads.buffer)) && Buffer.from(c.grads.buffer).equals(Buffer.from(a.grads.buffer)), 'bitwise the same gradients');
  await t.rejects(Model.create(cfg, { device: 'cuda' }), { code: 'ERR_DEVICE', message: /device: cuda: .*device: cpu/ });
});
