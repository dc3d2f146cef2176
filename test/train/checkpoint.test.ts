// Checkpoints: the HF layout with checksums, an exact round trip of weights and AdamW moments,
// torn writes and corrupted files never taken for a checkpoint, resume_from_checkpoint (path or
// true), and save_total_limit pruning.
import t from 'tap';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyRunner } from '../../src/statecharts/policyRunner.js';
import {
  checkpointDir, latestValidCheckpoint, loadCheckpoint, pruneCheckpoints, resolveResume, verifyCheckpoint, writeCheckpoint, type TrainerState,
} from '../../src/train/checkpoint.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { microModel, policy } from './helpers/trainFixtures.js';

function stateAt(step: number): TrainerState {
  return {
    version: 1, step, adam_step: step, epoch: step / 10, cursor: { epoch: 0, batch: step }, rng: { generator: 'philox4x32-10', seed: 42 },
    policy: new PolicyRunner(policy()).persist(), lr: 1e-3, total_steps: 100, warmup_steps: 0, interventions: 0, config_hash: 'abc',
  };
}

async function saved(dir: string, step: number, seed = step) {
  const model = await microModel(seed);
  const m = Float32Array.from({ length: model.params.length }, (_, i) => Math.sin(i + step));
  const v = Float32Array.from({ length: model.params.length }, (_, i) => Math.cos(i) ** 2);
  const w = await writeCheckpoint(dir, { model, m, v, state: stateAt(step) });
  return { model, m, v, w };
}

t.test('layout, checksums and an exact round trip', async (t) => {
  const dir = t.testdir();
  const { model, m, v, w } = await saved(dir, 4);
  t.equal(w.path, checkpointDir(dir, 4));
  t.same(readdirSync(w.path).sort(), ['checksums.sha256', 'config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  t.same(readdirSync(dir), ['checkpoint-4'], 'no temporary left behind');
  t.match(w.checksum, /^[0-9a-f]{64}$/);
  t.equal(await verifyCheckpoint(w.path), undefined);
  const h = await readSafetensorsHeader(join(w.path, 'model.safetensors'));
  t.ok(h.tensors.has('model.layers.1.mlp.down_proj.weight') && h.tensors.has('lm_head.weight'), 'HF tensor names');
  const o = await readSafetensorsHeader(join(w.path, 'optimizer.safetensors'));
  t.equal(o.metadata.step, '4');
  t.ok(o.tensors.has('model.norm.weight.exp_avg') && o.tensors.has('model.norm.weight.exp_avg_sq'));
  t.equal(JSON.parse(readFileSync(join(w.path, 'config.json'), 'utf8')).hidden_size, 32);

  const other = await microModel(99);
  const m2 = new Float32Array(m.length);
  const v2 = new Float32Array(v.length);
  const st = await loadCheckpoint(w.path, other, m2, v2);
  t.equal(st.step, 4);
  t.same(st.policy, stateAt(4).policy, 'policy snapshot round trip');
  const eq = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
  t.ok(model.views.every((x) => eq(model.param(x.name), other.param(x.name))), 'weights bitwise equal');
  t.ok(model.views.every((x) => eq(m.subarray(x.offset, x.offset + x.numel), m2.subarray(x.offset, x.offset + x.numel))), 'exp_avg bitwise equal');
  t.ok(model.views.every((x) => eq(v.subarray(x.offset, x.offset + x.numel), v2.subarray(x.offset, x.offset + x.numel))), 'exp_avg_sq bitwise equal');
});

t.test('torn writes and corrupted files are never taken for a checkpoint', async (t) => {
  const dir = t.testdir();
  await saved(dir, 4);
  await saved(dir, 8);
  // a writer that died before the rename leaves only its temporary
  mkdirSync(join(dir, '.checkpoint-12.tmp-424242'));
  writeFileSync(join(dir, '.checkpoint-12.tmp-424242', 'model.safetensors'), 'partial');
  // a directory with the right name but no checksums (e.g. copied by hand, half done)
  mkdirSync(join(dir, 'checkpoint-16'));
  writeFileSync(join(dir, 'checkpoint-16', 'trainer_state.json'), '{}');
  const warnings: string[] = [];
  t.equal(await latestValidCheckpoint(dir, (w) => warnings.push(w)), checkpointDir(dir, 8));
  t.match(warnings.join('\n'), /checkpoint-16: no checksums\.sha256/);

  // flip one byte of the newest complete checkpoint's weights
  const f = join(checkpointDir(dir, 8), 'model.safetensors');
  const bytes = readFileSync(f);
  bytes[bytes.length - 3] ^= 0x01;
  writeFileSync(f, bytes);
  warnings.length = 0;
  t.equal(await latestValidCheckpoint(dir, (w) => warnings.push(w)), checkpointDir(dir, 4), 'falls back to the older valid one');
  t.match(warnings.join('\n'), /checkpoint-8: model\.safetensors: sha256 .* does not match/);
  await t.rejects(resolveResume(checkpointDir(dir, 8), dir), { code: 'ERR_CHECKPOINT' }, 'an explicit corrupted path is an error');
  await t.rejects(resolveResume(join(dir, 'nope'), dir), { code: 'ERR_CHECKPOINT' });
  t.equal(await resolveResume(true, dir), checkpointDir(dir, 4));
  t.equal(await resolveResume(true, t.testdir()), null, 'true with no checkpoint: start fresh');
});

t.test('save_total_limit deletes the oldest complete checkpoints only', async (t) => {
  const dir = t.testdir();
  for (const s of [2, 4, 6]) await saved(dir, s, 1);
  mkdirSync(join(dir, 'checkpoint-1')); // incomplete: not counted, not deleted by pruning
  const removed = await pruneCheckpoints(dir, 2, checkpointDir(dir, 6));
  t.same(removed, [checkpointDir(dir, 2)]);
  t.ok(existsSync(checkpointDir(dir, 4)) && existsSync(checkpointDir(dir, 6)) && existsSync(checkpointDir(dir, 1)));
  t.same(await pruneCheckpoints(dir, null), [], 'no limit: keep all');
});
