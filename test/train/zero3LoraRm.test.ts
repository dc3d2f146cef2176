// ZeRO stage 3 with LoRA, and stage rm at ZeRO 2 and 3 (REFERENCE §8). With adapters only the
// frozen base is sharded: it is gathered for each layer's forward and backward as in full
// fine-tuning and never reduced, while the whole adapters' gradients are reduce-scattered and their
// moments partitioned as at stage 2. Stage rm's gradient policy judges the model's and the value
// head's gradients as one: under ZeRO 2 and 3 the model's statistics are the global ones combined
// from every rank's part, the plan's operations run on the part, and the joint clip norm after
// them combines the parts again. As real jobs on loopback (coordinator, rank processes, Gloo):
// stage 0's plans, rows (1e-5 of max(1, |v|)) and final weights, adapters and value head (2e-5 of
// each tensor's largest value: several sequences per rank and step, summed in another order, as in
// zero3Stages.test.ts); a LoRA run resumed from a stage-3 checkpoint on another world size
// continues with the same rows. The rm jobs scale their loss by 1e-6 on steps 2-3, so the policy
// enters vanishing-intervention and its noise, scaling and centralization run on the parts.
import t from 'tap';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { shardModel } from '../../src/train/zero/shardModel.js';
import { microHfConfig, passLosses, progressionData } from './helpers/trainFixtures.js';
import { weightsDiff, writeSpModel, writeSpPairs } from './helpers/spJob.js';
import { runZeroJob as run, sameRows, writeSftRows, zeroJobLines } from './helpers/zeroJob.js';

const ROWS_RTOL = 1e-5;
const WEIGHTS_RTOL = 2e-5;
const VANISH = ['gradient_policy:', '  loss_scale_schedule: "2-3:1.0e-6"'];

const maxAbs = (x: Float32Array) => x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

t.test('world of one: adapters on a sharded base give the unsharded losses and adapter gradients bitwise, and nothing of the base is reduced', async (t) => {
  const seqs = progressionData({ count: 2, len: 24 });
  const cfg = parseModelConfig(microHfConfig, 'micro');
  for (const bf16 of [false, true]) {
    const name = bf16 ? 'bf16' : 'fp32';
    const lora = { rank: 4, alpha: 8, dropout: 0, targets: ['all'], seed: 3 };
    const ref = await Model.create(cfg, { seed: 5, bf16 });
    const z3 = await Model.create(cfg, { seed: 5, bf16 });
    await ref.attachLora(lora);
    await z3.attachLora(lora);
    // B starts at zero: one step's worth of adapter weights so the adapters change the outputs
    for (const m of [ref, z3]) for (let i = 0; i < m.lora!.params.length; i++) m.lora!.params[i] = Math.sin(i) * 0.05;
    const sh = await shardModel(z3, singleProcessRuntime());
    t.equal(maxAbs(z3.params), 0, `${name}: the base parameters are released once sharded`);
    t.equal(z3.trainable, z3.lora, `${name}: what trains is the whole adapters`);
    const losses = await passLosses([ref, z3], seqs);
    t.same(losses[1], losses[0], `${name}: the same losses, bitwise`);
    t.ok(maxAbs(ref.lora!.grads) > 0 && z3.lora!.grads.every((v, i) => v === ref.lora!.grads[i]), `${name}: the same adapter gradients, bitwise`);
    t.equal(maxAbs(sh.grads) + maxAbs(z3.grads) + maxAbs(z3.params), 0, `${name}: no base gradient reduced into the part, nothing left in the flat buffers`);
    await t.rejects(z3.attachLora(lora), `${name}: adapters are attached before the base is sharded, not after`);
  }
});

const cases = [
  { name: 'LoRA sft, SP 2', stage: 'sft', finetuning: 'lora', world: 2, sp: 2, zero: [3], evaluate: true, extra: [] },
  { name: 'LoRA dpo, DP 2', stage: 'dpo', finetuning: 'lora', world: 2, sp: 1, zero: [3], evaluate: false, extra: [] },
  { name: 'rm, DP 2', stage: 'rm', finetuning: 'full', world: 2, sp: 1, zero: [2, 3], evaluate: false, extra: VANISH },
  { name: 'LoRA rm, DP 2', stage: 'rm', finetuning: 'lora', world: 2, sp: 1, zero: [3], evaluate: false, extra: VANISH },
] as const;

for (const c of cases) {
  t.test(`${c.name}: zero_stage ${c.zero.join(' and ')} give stage 0's plans, rows and weights`, async (t) => {
    const root = t.testdir();
    const data = c.stage === 'sft' ? writeSftRows(root) : writeSpPairs(root);
    const lines = [...zeroJobLines(c.stage, writeSpModel(root), data, c.sp, { finetuning: c.finetuning, evaluate: c.evaluate }), ...c.extra];
    const z0 = await run(t, root, 'z0', lines, c.world, ['zero_stage: 0']);
    if (c.extra.length) t.ok(z0.metrics.some((m) => m.policy_state === 'vanishing-intervention'), `the policy intervenes (${z0.metrics.map((m) => m.policy_state).join(', ')})`);
    const files = [c.finetuning === 'lora' ? 'adapter_model.safetensors' : 'model.safetensors', ...(c.stage === 'rm' ? ['value_head.safetensors'] : [])];
    for (const z of c.zero) {
      const r = await run(t, root, `z${z}`, lines, c.world, [`zero_stage: ${z}`]);
      t.same(r.planDigests, z0.planDigests, `stage ${z}: every rank's plan digest equal to stage 0`);
      sameRows(t, r.metrics, z0.metrics, `stage ${z} against stage 0`, ROWS_RTOL, c.evaluate);
      for (const f of files) {
        const w = await weightsDiff(z0.dir, r.dir, f);
        t.ok(w <= WEIGHTS_RTOL, `stage ${z}: ${f} within ${w.toExponential(2)} <= ${WEIGHTS_RTOL} of stage 0`);
      }
      if (c.stage === 'sft' && z === 3) {
        // the checkpoint holds the adapters alone: the sharded base stays as loaded, on any world size
        const resumed = await run(t, root, 'resumed', lines.map((l) => (l.startsWith('sequence_parallel_size') ? 'sequence_parallel_size: 1' : l)), 1, ['zero_stage: 3', `resume_from_checkpoint: ${join(r.dir, 'checkpoint-2')}`], [3, 4]);
        const later = (rows: Record<string, unknown>[]) => rows.filter((m) => Number(m.step) > 2);
        sameRows(t, later(resumed.metrics), later(r.metrics), 'resumed on world 1 against the uninterrupted world 2', ROWS_RTOL, true);
      }
    }
  });
}
