// ZeRO over the whole world (REFERENCE §8). Stage 1: the same PT job with zero_stage 0 and 1 on
// two ranks (data parallel) and on four (SP 2 x DP 2) ends with the same weights (bitwise: the
// plan runs on the same reduced gradient and AdamW is elementwise), the same losses, gradient
// figures and policy decisions (every rank's plan digest, from its step reports), and the same
// consolidated moments in the checkpoint; two stage-1 runs are bitwise the same; a stage-1
// checkpoint resumes on another world size (its parts are re-cut) with the same losses.
// Stage 2 (gradients reduce-scattered): in one process over a world of virtual ranks, every plan
// operation (noise, scaling, centralization, clip) on the parts against the fused stage-0 step on
// the whole gradient; then the same jobs as stage 1: weights within 1e-6 of stage 0's, the same
// plan digests, bitwise the same run to run, and a resume on another world size. Checkpoints: one
// optimizer file per rank with the partition map, in the checksums; a resume on the same cut
// (bitwise), across the consolidated layout of older checkpoints in both directions, and in
// process the path each rank takes and its log line. LoRA at stage 2: the adapters partitioned, the
// final adapters within 1e-6 of stage 0, the same plans.
import t, { type Test } from 'tap';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import type { ParamView } from '../../src/engine/nativeBinding.js';
import { readSafetensors } from '../../src/engine/safetensors.js';
import { addNoise } from '../../src/engine/ops/optim.js';
import type { PolicyPlan } from '../../src/statecharts/trainingPolicy.js';
import { verifyCheckpoint } from '../../src/train/checkpoint.js';
import { Optimizer } from '../../src/train/loop/Optimizer.js';
import { restoreTrainer } from '../../src/train/loop/trainerState.js';
import { PARTITION_MAP_FILE, readAllParts, readPartitionMap } from '../../src/train/zero/optimizerParts.js';
import { Partition } from '../../src/train/zero/partition.js';
import type { ZeroGroup } from '../../src/train/zero/ZeroGroup.js';
import { createLogger } from '../../src/util/Logger.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { writeSpModel } from './helpers/spJob.js';

function jobYaml(root: string, model: string, name: string, extra: string[]): string {
  return [
    `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 64', 'packing: true',
    'logging_steps: 1', 'save_steps: 2', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'weight_decay: 0.01',
    `output_dir: ${join(root, name)}`, ...extra,
  ].join('\n');
}

const bytes = (dir: string, file: string) => readFileSync(join(dir, file));

/** A directory with the SP test model and a corpus, and a runner of jobs on it (each must succeed; `four`: and run steps 1-4). */
function jobsIn(t: Test) {
  const root = t.testdir();
  const model = writeSpModel(root);
  const lines = Array.from({ length: 48 }, (_, i) => `line ${i}: the quick brown fox ${'jumps '.repeat(1 + (i % 5))}over the lazy dog number ${i * 7}.`);
  writeFileSync(join(root, 'corpus.txt'), lines.join('\n') + '\n');
  const run = async (name: string, world: number, extra: string[], four = true) => {
    const r = await runCoordinatedJob(name, jobYaml(root, model, name, extra), world);
    t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
    if (four) t.same(r.metrics.map((m) => m.step), [1, 2, 3, 4], `${name}: four steps`);
    return { ...r, dir: join(root, name) };
  };
  return { root, model, run };
}

/** The full moments of a checkpoint (consolidated, or rebuilt from its ZeRO parts), m then v of every tensor in order, as bytes. */
async function momentsOf(dir: string): Promise<Buffer> {
  const st = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { step: number };
  const map = await readPartitionMap(dir);
  if (!map) {
    const opt = await readSafetensors(join(dir, 'optimizer.safetensors'));
    const names = [...opt.tensors.keys()].filter((k) => k.endsWith('.exp_avg')).map((k) => k.slice(0, -'.exp_avg'.length));
    return Buffer.concat([...names.map((n) => opt.tensors.get(`${n}.exp_avg`)!.data), ...names.map((n) => opt.tensors.get(`${n}.exp_avg_sq`)!.data)].map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength)));
  }
  t.equal(map.step, st.step, `${dir}: the partition map is for the checkpoint's step`);
  let at = 0;
  const views: ParamView[] = map.tensors.map((x) => {
    const v = { name: x.name, offset: at, shape: x.shape, numel: x.numel };
    at += x.numel;
    return v;
  });
  const m = new Float32Array(at);
  const v = new Float32Array(at);
  await readAllParts(dir, map, views, m, v);
  return Buffer.concat([Buffer.from(m.buffer), Buffer.from(v.buffer)]);
}

t.test('partition map: contiguous per-tensor parts in rank order, packed and gathered back', async (t) => {
  const p = new Partition([{ offset: 0, numel: 5 }, { offset: 16, numel: 2 }, { offset: 32, numel: 7 }], 3);
  t.equal(p.partLength, 2 + 1 + 3, 'ceil(5/3) + ceil(2/3) + ceil(7/3)');
  t.same(p.segments(0), [{ tensor: 0, offset: 0, numel: 2, packed: 0 }, { tensor: 1, offset: 16, numel: 1, packed: 2 }, { tensor: 2, offset: 32, numel: 3, packed: 3 }]);
  t.same(p.segments(2), [{ tensor: 0, offset: 4, numel: 1, packed: 0 }, { tensor: 2, offset: 38, numel: 1, packed: 3 }], 'the last rank: short parts, an empty one left out');
  const full = Float32Array.from({ length: 39 }, (_, i) => i + 1);
  const gathered = new Float32Array(3 * p.partLength);
  for (let r = 0; r < 3; r++) gathered.set(p.pack(full, r), r * p.partLength);
  const back = new Float32Array(39);
  p.unpackAll(gathered, back);
  for (const [o, n] of [[0, 5], [16, 2], [32, 7]] as const) t.same([...back.subarray(o, o + n)], [...full.subarray(o, o + n)], `tensor at ${o} rebuilt`);
  t.throws(() => new Partition([], 0), /positive integer/);
});

t.test('zero_stage 1 gives the weights, losses and plans of stage 0 (DP 2 and SP 2 x DP 2), bitwise run to run', async (t) => {
  const { root, model, run } = jobsIn(t);
  let w2z1: Awaited<ReturnType<typeof run>> | undefined;
  for (const [world, sp] of [[2, 1], [4, 2]] as const) {
    const z0 = await run(`w${world}z0`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 0']);
    const z1 = await run(`w${world}z1`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 1']);
    t.same(z1.metrics.map((m) => [m.loss, m.grad_norm, m.grad_mean, m.policy_state]), z0.metrics.map((m) => [m.loss, m.grad_norm, m.grad_mean, m.policy_state]), `world ${world} (sp ${sp}): the same losses, gradient figures and states`);
    const d0 = z0.planDigests;
    t.ok(d0.length >= 4 * world, `world ${world}: ${d0.length} plan digests reported`);
    t.same(z1.planDigests, d0, `world ${world}: every rank's plan digest equal to stage 0`);
    t.ok(bytes(z1.dir, 'model.safetensors').equals(bytes(z0.dir, 'model.safetensors')), `world ${world}: final weights bitwise equal to stage 0`);
    t.ok(await momentsOf(join(z1.dir, 'checkpoint-4')).then(async (m1) => m1.equals(await momentsOf(join(z0.dir, 'checkpoint-4')))), `world ${world}: the moments (rebuilt from the ${world} part files by the partition map) bitwise equal to stage 0's consolidated ones`);
    if (world === 2) {
      w2z1 = z1;
      const again = await run('w2z1again', 2, ['sequence_parallel_size: 1', 'zero_stage: 1']);
      t.ok(bytes(again.dir, 'model.safetensors').equals(bytes(z1.dir, 'model.safetensors')), 'a second stage-1 run: bitwise the same weights');
    }
  }
  // world 2 (DP 2) -> world 4 (SP 2 x DP 2): the same replicas and data, the moments re-cut into 4 parts
  const resumed = await runCoordinatedJob('resumed', jobYaml(root, model, 'resumed', ['sequence_parallel_size: 2', 'zero_stage: 1', `resume_from_checkpoint: ${join(w2z1!.dir, 'checkpoint-2')}`]), 4);
  t.equal(resumed.result.ok, true, String(resumed.result.reason ?? 'ok'));
  const tail = w2z1!.metrics.filter((m) => m.step > 2);
  t.same(resumed.metrics.map((m) => m.step), [3, 4], 'resumed at step 3');
  const rel = Math.max(...tail.map((m, i) => Math.abs(resumed.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));
  t.ok(rel <= 1e-5, `stage-1 checkpoint of world 2 resumed on world 4: losses within ${rel.toExponential(2)} <= 1e-5 relative`);
});

t.test('partition map: 2-D tensors cut at row boundaries, buckets of whole tensors, rank-major packing', async (t) => {
  // [5, 3] -> ceil(5/2) = 3 rows (9 elements) per rank; [7] -> 4 elements; [2, 4] -> 1 row (4 elements)
  const p = new Partition([{ offset: 0, numel: 15, shape: [5, 3] }, { offset: 16, numel: 7, shape: [7] }, { offset: 32, numel: 8, shape: [2, 4] }], 2);
  t.equal(p.partLength, 9 + 4 + 4);
  t.same(p.segments(1), [{ tensor: 0, offset: 9, numel: 6, packed: 0 }, { tensor: 1, offset: 20, numel: 3, packed: 9 }, { tensor: 2, offset: 36, numel: 4, packed: 13 }], 'rank 1: whole rows only');
  t.same(p.buckets(), [{ first: 0, end: 3, lo: 0, hi: 17 }], 'one bucket when everything fits');
  t.same(p.buckets(10), [{ first: 0, end: 1, lo: 0, hi: 9 }, { first: 1, end: 3, lo: 9, hi: 17 }], 'buckets of at most 10 elements per rank');
  t.same(p.buckets(3).map((b) => [b.first, b.end]), [[0, 1], [1, 2], [2, 3]], 'a part larger than the bucket is a bucket alone');
  const full = Float32Array.from({ length: 40 }, (_, i) => i + 1);
  for (const b of p.buckets(10)) {
    const rm = p.packRankMajor(full, b);
    const len = b.hi - b.lo;
    t.same([...rm.subarray(0, len)], [...p.pack(full, 0).subarray(b.lo, b.hi)], `bucket ${b.first}: rank 0's slice first`);
    t.same([...rm.subarray(len)], [...p.pack(full, 1).subarray(b.lo, b.hi)], `bucket ${b.first}: then rank 1's`);
    const back = new Float32Array(40);
    p.unpackAll(rm, back, b);
    for (const s of [...p.segments(0, b), ...p.segments(1, b)]) t.same([...back.subarray(s.offset, s.offset + s.numel)], [...full.subarray(s.offset, s.offset + s.numel)], `bucket ${b.first}: tensor ${s.tensor} at ${s.offset} gathered back`);
  }
});

t.test('noise from an element index: a part gets what the whole tensor would', async (t) => {
  const key = { seed: 11, step: 5, tensor: 3 };
  const whole = new Float32Array(1000);
  await addNoise(whole, 0.5, key);
  for (const [lo, hi] of [[0, 1000], [1, 64], [63, 129], [300, 301], [517, 1000]] as const) {
    const part = new Float32Array(hi - lo);
    await addNoise(part, 0.5, key, lo);
    t.ok(part.every((v, i) => v === whole[lo + i]), `[${lo}, ${hi}): bitwise the whole tensor's values`);
  }
});

/** A world of `n` ranks in this process: each collective resolves once every rank called it (in the same order). */
function localWorld(n: number, dp: number): ZeroGroup[] {
  let pending: { rank: number; x: Float32Array; done: (v: Float32Array) => void; kind: string }[] = [];
  const call = (rank: number, kind: string, x: Float32Array, into?: Float32Array) => new Promise<Float32Array>((resolve) => {
    const done = (v: Float32Array) => resolve(into ? (into.set(v), into) : v);
    pending.push({ rank, x: Float32Array.from(x), done, kind });
    if (pending.length < n) return;
    const calls = pending.sort((a, b) => a.rank - b.rank);
    pending = [];
    if (new Set(calls.map((c) => c.kind)).size !== 1) throw new Error('ranks issued different collectives');
    for (const c of calls) {
      if (kind === 'gather') {
        const out = new Float32Array(c.x.length * n);
        calls.forEach((o, r) => out.set(o.x, r * c.x.length));
        c.done(out);
      } else {
        const len = c.x.length / n;
        const out = Float32Array.from(calls[0]!.x.subarray(c.rank * len, (c.rank + 1) * len));
        for (let r = 1; r < n; r++) for (let i = 0; i < len; i++) out[i] = out[i]! + calls[r]!.x[c.rank * len + i]!;
        c.done(out);
      }
    }
  });
  return Array.from({ length: n }, (_, rank) => ({ stage: 2, rank, world: n, dp, allGather: (x, out) => call(rank, 'gather', x, out), reduceScatterSum: (x, out) => call(rank, 'scatter', x, out) }));
}

t.test('stage 2 on 3 virtual ranks: the reduce-scatter, statistics and every plan operation on the parts give stage 0\'s step', async (t) => {
  const shapes: [string, number[]][] = [
    ['model.embed_tokens.weight', [19, 8]], ['model.layers.0.input_layernorm.weight', [8]], ['model.layers.0.self_attn.q_proj.weight', [8, 8]],
    ['model.layers.0.self_attn.q_proj.bias', [8]], ['model.layers.0.mlp.down_proj.weight', [8, 21]], ['model.norm.weight', [8]], ['lm_head.weight', [19, 8]],
  ];
  const views: ParamView[] = [];
  let at = 0;
  for (const [name, shape] of shapes) {
    const numel = shape.reduce((a, b) => a * b, 1);
    views.push({ name, offset: at, shape, numel });
    at += Math.ceil(numel / 16) * 16;
  }
  const world = 3;
  const init = Float32Array.from({ length: at }, (_, i) => Math.sin(i * 0.37));
  // each rank's own (unreduced) gradient; the tiny tensor scales get some tensors below the threshold
  const local = (r: number) => Float32Array.from({ length: at }, (_, i) => Math.cos(i * 0.11 + r) * (views.find((v) => i >= v.offset && i < v.offset + v.numel)?.name.includes('norm') ? 1e-5 : 0.2));
  const plan: PolicyPlan = { step: 3, state: 'vanishing-intervention', lateVanishing: false, skipUpdate: false, escalate: false, noiseStd: 1e-3, noiseSeed: 7, scaleThreshold: 1e-4, scaleFactor: 1.5, lrMultiplier: 1, clipNorm: 0.5, centralize: 'all' };
  const config = { weight_decay: 0.01, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 };
  // stage 0: the world-sum of the gradients / dp (rank order) and the fused step on the whole of it
  const reduced = local(0);
  for (let r = 1; r < world; r++) {
    const g = local(r);
    for (let i = 0; i < at; i++) reduced[i] = reduced[i]! + g[i]!;
  }
  for (let i = 0; i < at; i++) reduced[i] = reduced[i]! / world;
  const ref = { params: Float32Array.from(init), grads: Float32Array.from(reduced), views };
  const opt0 = new Optimizer(ref, config);
  const stats0 = await opt0.gradStats();
  const fx0 = await opt0.step(plan, stats0, 1e-2);
  t.ok(fx0.scaled > 0 && fx0.centralized > 0 && fx0.noised > 0 && fx0.clipFactor < 1, `stage 0 used every operation: ${JSON.stringify(fx0)}`);
  const groups = localWorld(world, world);
  const sets = groups.map((g) => ({ params: Float32Array.from(init), grads: local(g.rank), views }));
  const opts = groups.map((g, r) => new Optimizer(sets[r]!, config, g));
  await Promise.all(opts.map((o) => o.reduceGradients()));
  const stats = await Promise.all(opts.map((o) => o.gradStats()));
  for (let r = 0; r < world; r++) {
    t.same(stats[r], stats[0], `rank ${r}: the same statistics as rank 0`);
    t.ok(Math.abs(stats[r]!.l2Norm - stats0.l2Norm) <= 1e-12 * stats0.l2Norm && Math.abs(stats[r]!.gradMean - stats0.gradMean) <= 1e-12 * stats0.gradMean, `rank ${r}: norm and grad_mean of stage 0 up to summation order`);
    t.equal(stats[r]!.maxAbs, stats0.maxAbs, 'max |g| exact');
  }
  const fx = await Promise.all(opts.map((o, r) => o.step(plan, stats[r]!, 1e-2)));
  for (let r = 0; r < world; r++) {
    t.same({ ...fx[r]!, normBeforeClip: 0, clipFactor: 0 }, { ...fx0, normBeforeClip: 0, clipFactor: 0 }, `rank ${r}: the same counts of noised, scaled, centralized tensors`);
    t.ok(Math.abs(fx[r]!.normBeforeClip - fx0.normBeforeClip) <= 1e-12 * fx0.normBeforeClip, `rank ${r}: the recomputed norm ${fx[r]!.normBeforeClip} ~ ${fx0.normBeforeClip}`);
    let worst = 0;
    for (let i = 0; i < at; i++) worst = Math.max(worst, Math.abs(sets[r]!.params[i]! - ref.params[i]!));
    t.ok(worst <= 1e-6, `rank ${r}: every parameter within ${worst.toExponential(2)} <= 1e-6 of stage 0 after the step`);
    t.ok(sets[r]!.params.every((v, i) => v === sets[0]!.params[i]), `rank ${r}: the same bits as rank 0`);
  }
  await t.rejects(new Optimizer(ref, config).reduceGradients(), /not partitioned/, 'stage 0: reduceGradients refuses and names the way');
});

/** The final weights of a run, tensor by tensor in name order. */
async function weightsOf(dir: string): Promise<Float32Array[]> {
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  return [...tensors.keys()].sort().map((k) => tensors.get(k)!.data);
}

t.test('zero_stage 2 gives stage 0\'s weights (1e-6) and plans (DP 2 and SP 2 x DP 2), bitwise run to run, and resumes on another world size', async (t) => {
  const { root, model, run } = jobsIn(t);
  let w2z2: Awaited<ReturnType<typeof run>> | undefined;
  for (const [world, sp] of [[2, 1], [4, 2]] as const) {
    const z0 = await run(`w${world}z0`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 0']);
    const z2 = await run(`w${world}z2`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 2']);
    t.same(z2.planDigests, z0.planDigests, `world ${world} (sp ${sp}): every rank's plan digest equal to stage 0 (${z0.planDigests.length})`);
    t.same(z2.metrics.map((m) => m.policy_state), z0.metrics.map((m) => m.policy_state), `world ${world}: the same policy states`);
    const lossRel = Math.max(...z0.metrics.map((m, i) => Math.abs(z2.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));
    const normRel = Math.max(...z0.metrics.map((m, i) => Math.abs(z2.metrics[i]!.grad_norm - m.grad_norm) / Math.abs(m.grad_norm)));
    t.ok(lossRel <= 1e-5 && normRel <= 1e-5, `world ${world}: losses within ${lossRel.toExponential(2)}, grad_norm within ${normRel.toExponential(2)} of stage 0`);
    const [a, b] = [await weightsOf(z0.dir), await weightsOf(z2.dir)];
    let worst = 0;
    a.forEach((w, k) => {
      let mx = 0;
      for (const v of w) mx = Math.max(mx, Math.abs(v));
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(b[k]![i]! - w[i]!) / Math.max(mx, 1e-30));
    });
    t.ok(worst <= 1e-6, `world ${world}: final weights within ${worst.toExponential(2)} <= 1e-6 of stage 0 (relative to each tensor's largest)`);
    if (world === 2) {
      w2z2 = z2;
      const again = await run('w2z2again', 2, ['sequence_parallel_size: 1', 'zero_stage: 2']);
      t.ok(bytes(again.dir, 'model.safetensors').equals(bytes(z2.dir, 'model.safetensors')), 'a second stage-2 run: bitwise the same weights');
      t.ok((await momentsOf(join(again.dir, 'checkpoint-4'))).equals(await momentsOf(join(z2.dir, 'checkpoint-4'))), 'and the same moments');
    }
  }
  const resumed = await runCoordinatedJob('resumed2', jobYaml(root, model, 'resumed2', ['sequence_parallel_size: 2', 'zero_stage: 2', `resume_from_checkpoint: ${join(w2z2!.dir, 'checkpoint-2')}`]), 4);
  t.equal(resumed.result.ok, true, String(resumed.result.reason ?? 'ok'));
  t.same(resumed.metrics.map((m) => m.step), [3, 4], 'resumed at step 3');
  const tail = w2z2!.metrics.filter((m) => m.step > 2);
  const rel = Math.max(...tail.map((m, i) => Math.abs(resumed.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));
  t.ok(rel <= 1e-5, `stage-2 checkpoint of world 2 resumed on world 4: losses within ${rel.toExponential(2)} <= 1e-5 relative`);
});

t.test('ZeRO checkpoints: one optimizer file per rank and the partition map, checksummed; resumed on the same cut, on another world, from and to consolidated moments', async (t) => {
  const jobs = jobsIn(t);
  const root = jobs.root;
  const run = (name: string, extra: string[]) => jobs.run(name, 2, ['sequence_parallel_size: 1', ...extra], false);
  const z2 = await run('z2', ['zero_stage: 2']);
  const z0 = await run('z0', ['zero_stage: 0']);
  const ck = join(z2.dir, 'checkpoint-2');
  const sums = readFileSync(join(ck, 'checksums.sha256'), 'utf8');
  for (const f of ['optimizer-part-00000-of-00002.safetensors', 'optimizer-part-00001-of-00002.safetensors', PARTITION_MAP_FILE]) t.match(sums, new RegExp(`  ${f.replace(/\./g, '\\.')}\n`), `${f} is listed in the checksums`);
  const opt = await readSafetensors(join(ck, 'optimizer.safetensors'));
  t.equal([...opt.tensors.keys()].filter((k) => k.includes('exp_avg')).length, 0, 'optimizer.safetensors holds no moments: they are in the parts');
  t.equal(opt.metadata.step, '2', 'and still the step');
  const map = (await readPartitionMap(ck))!;
  t.same([map.world, map.step, map.files.length], [2, 2, 2], 'the map: world 2, step 2, two part files');
  // a flipped byte in a part makes the checkpoint invalid
  const bad = join(root, 'bad');
  cpSync(ck, bad, { recursive: true });
  const part = join(bad, map.files[1]!);
  const b = readFileSync(part);
  b[b.length - 1] = b[b.length - 1]! ^ 1;
  writeFileSync(part, b);
  t.match(await verifyCheckpoint(bad), /optimizer-part-00001-of-00002\.safetensors: sha256/, 'a corrupted part fails the checksums');

  // the same cut (world 2): each rank reads its own part, and the run continues bitwise
  const same = await run('same', ['zero_stage: 2', `resume_from_checkpoint: ${ck}`]);
  t.ok(bytes(same.dir, 'model.safetensors').equals(bytes(z2.dir, 'model.safetensors')), 'resumed on the same cut: the final weights of the uninterrupted run, bitwise');
  const rel = (a: { metrics: { step: number; loss: number }[] }, b: { metrics: { step: number; loss: number }[] }) =>
    Math.max(...a.metrics.map((m) => Math.abs(m.loss - b.metrics.find((x) => x.step === m.step)!.loss) / Math.abs(m.loss)));
  // consolidated moments (a stage-0 checkpoint, the layout of checkpoints written before parts) into stage 2, and parts into stage 0
  const fromOld = await run('fromOld', ['zero_stage: 2', `resume_from_checkpoint: ${join(z0.dir, 'checkpoint-2')}`]);
  t.same(fromOld.metrics.map((m) => m.step), [3, 4], 'stage 2 resumed from consolidated moments at step 3');
  t.ok(rel(fromOld, z0) <= 1e-5, `and continues with stage 0's losses (within ${rel(fromOld, z0).toExponential(2)})`);
  const toZero = await run('toZero', ['zero_stage: 0', `resume_from_checkpoint: ${ck}`]);
  t.ok(rel(toZero, z2) <= 1e-5, `stage 0 resumed from parts: the losses of the stage-2 run (within ${rel(toZero, z2).toExponential(2)})`);

  // in process: which path a resume takes, and that it says so
  const m = await Model.fromPretrained(ck);
  try {
    const n = m.trainable.params.length;
    const full = { m: new Float32Array(n), v: new Float32Array(n) };
    await readAllParts(ck, map, m.trainable.views, full.m, full.v);
    const config = { weight_decay: 0.01, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 };
    for (const world of [2, 3]) {
      const groups = localWorld(world, world);
      for (let rank = 0; rank < world; rank++) {
        const logs: string[] = [];
        const o = new Optimizer(m.trainable, config, groups[rank]!);
        await restoreTrainer(ck, m, o, undefined, createLogger('info', (r) => void logs.push(r.msg)));
        const p = o.partition!;
        const [pm, pv] = [p.pack(full.m, rank), p.pack(full.v, rank)];
        t.ok(o.m.every((x, i) => x === pm[i]) && o.v.every((x, i) => x === pv[i]), `world ${world} rank ${rank}: its part of the moments, bitwise`);
        t.equal(o.adamStep, 2, 'and the update count');
        const said = world === 2 ? /each rank read its own part of the optimizer state \(2 parts/ : /of 2 parts re-cut by its partition map into 3 parts/;
        t.ok(logs.some((l) => said.test(l)), `world ${world}: says ${said.source}`);
      }
    }
  } finally {
    m.close();
  }
});

t.test('zero_stage 2 with LoRA: the adapters are partitioned and end within 1e-6 of stage 0\'s, with the same plans', async (t) => {
  const { root, model } = jobsIn(t);
  const run = async (name: string, stage: number) => {
    const yaml = jobYaml(root, model, name, ['sequence_parallel_size: 1', `zero_stage: ${stage}`, 'lora_rank: 4']).replace('finetuning_type: full', 'finetuning_type: lora');
    const r = await runCoordinatedJob(name, yaml, 2);
    t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
    const { tensors } = await readSafetensors(join(root, name, 'adapter_model.safetensors'));
    return { ...r, adapters: [...tensors.keys()].sort().map((k) => tensors.get(k)!.data) };
  };
  const z0 = await run('lora0', 0);
  const z2 = await run('lora2', 2);
  t.ok(z0.adapters.length > 0, `${z0.adapters.length} adapter tensors`);
  t.same(z2.planDigests, z0.planDigests, 'every rank\'s plan digest equal to stage 0');
  let worst = 0;
  z0.adapters.forEach((w, k) => {
    let mx = 0;
    for (const v of w) mx = Math.max(mx, Math.abs(v));
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(z2.adapters[k]![i]! - w[i]!) / Math.max(mx, 1e-30));
  });
  t.ok(worst <= 1e-6, `final adapters within ${worst.toExponential(2)} <= 1e-6 of stage 0`);
  t.ok((await readPartitionMap(join(root, 'lora2', 'checkpoint-4')))!.tensors.every((x) => /lora_[AB]/.test(x.name)), 'the partition map covers the adapters only');
});
