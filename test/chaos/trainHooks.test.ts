// The training loop calls the fault plan's ChaosHooks at the documented points of every step:
// inert hooks leave the weights bit for bit those of a run without hooks; a NaN fault before the
// reduction is skipped by the policy; a failed checkpoint write leaves no checkpoint (the previous
// one stays the newest valid) and fails the run with the fault's code.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChaosHooks } from '../../src/train/ChaosHooks.js';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { parseFaultPlan } from '../../src/chaos/FaultPlan.js';
import { RankChaos } from '../../src/chaos/RankChaos.js';
import { CHECKSUMS_FILE, latestValidCheckpoint } from '../../src/train/checkpoint.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, weightsHash, type StepInfo } from '../../src/train/loop/index.js';
import { createLogger } from '../../src/util/Logger.js';
import { microModel, policy, progressionData, standInData, trainConfig } from '../train/helpers/trainFixtures.js';

const logger = createLogger('silent');
const items = progressionData({ count: 4, len: 48 });

function rankChaos(yaml: string, outputDir: string): RankChaos {
  const plan = parseFaultPlan(`name: hooks\nseed: 1\nranks: 1\nfaults:\n${yaml}`);
  const c = new RankChaos({ seed: plan.seed, faults: plan.faults }, 0, 0, 0, logger);
  c.configure(loadJobConfig({ configPath: 'hooks.yaml', configText: `output_dir: ${outputDir}\n`, env: {} }));
  return c;
}

async function train(dir: string, chaos: ChaosHooks | undefined, steps: StepInfo[] = []) {
  const model = await microModel(7);
  const trainer = new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(), chaos,
    config: trainConfig(dir, { max_steps: 4, save_steps: 2, warmup_steps: 0 }),
    hooks: { reportStep: (r) => steps.push(r) },
  });
  const r = await trainer.run();
  return { model, r };
}

t.test('inert hooks are called in order and change nothing', async (t) => {
  const calls: string[] = [];
  const recorder: ChaosHooks = {
    active: true,
    beforeStep: async (s) => void calls.push(`beforeStep ${s}`),
    lossScale: (s) => (calls.push(`lossScale ${s}`), 1),
    corruptGradients: (g, s) => void calls.push(`corruptGradients ${s} ${g.length}`),
    inCollective: async (name, s) => void calls.push(`inCollective ${name} ${s}`),
    checkpointWrite: async (s, tmp) => void calls.push(`checkpointWrite ${s} ${/\.checkpoint-\d+\.tmp-/.test(tmp) && existsSync(join(tmp, CHECKSUMS_FILE)) ? 'complete temp dir' : `bad temp dir ${tmp}`}`),
  };
  const plain = await train(t.testdir(), undefined);
  const hooked = await train(join(t.testdir(), 'hooked'), recorder);
  t.equal(hooked.r.finalHash, plain.r.finalHash, `inert hooks: same weights bit for bit (${plain.r.finalHash.slice(0, 12)})`);
  const n = plain.model.params.length;
  const expected = [1, 2, 3, 4].flatMap((s) => [`beforeStep ${s}`, `lossScale ${s}`, `corruptGradients ${s} ${n}`, `inCollective reduceGradients ${s}`, ...(s % 2 === 0 ? [`checkpointWrite ${s} complete temp dir`] : [])]);
  t.same(calls, expected, 'every hook at its point of every step, the write hook with the complete temp dir before the rename');
});

t.test('a NaN fault before the reduction: the update is skipped, the weights stay finite', async (t) => {
  const dir = t.testdir();
  const steps: StepInfo[] = [];
  const chaos = rankChaos('  - { kind: nan_gradients, at_step: 3, target: { rank: 0 } }', dir);
  // closed before the test directory is removed: its timed flush of the effect counts writes there
  const { model } = await train(dir, chaos, steps).finally(() => chaos.close());
  const s3 = steps.find((s) => s.step === 3)!;
  t.ok(s3.stats.nonfinite > 0, `step 3 counts non-finite gradient values: ${s3.stats.nonfinite}`);
  t.equal(s3.stats.lr, 0, 'step 3: update skipped (lr 0)');
  t.ok(steps.filter((s) => s.step !== 3).every((s) => s.stats.nonfinite === 0 && Number.isFinite(s.loss)), 'the other steps are finite');
  const bad = model.params.reduce((a, x) => a + (Number.isFinite(x) ? 0 : 1), 0);
  t.equal(bad, 0, `non-finite weights after the run: ${bad} of ${model.params.length}`);
});

t.test('a failed checkpoint write leaves no checkpoint and fails the run with its code', async (t) => {
  const dir = t.testdir();
  // armed before step 3: the next write (checkpoint-4, the last) fails between files and rename
  const chaos = rankChaos('  - { kind: checkpoint_write_fail, at_step: 3, target: { rank: 0 } }', dir);
  await t.rejects(train(dir, chaos).finally(() => chaos.close()), { code: 'ERR_CHAOS_CHECKPOINT_WRITE' });
  const names = readdirSync(dir).filter((n) => n.includes('checkpoint-'));
  t.same(names.filter((n) => /^checkpoint-\d+$/.test(n)), ['checkpoint-2'], `only checkpoint-2 was committed (directory: ${names.join(', ')})`);
  t.equal(await latestValidCheckpoint(dir, () => undefined), join(dir, 'checkpoint-2'), 'the newest valid checkpoint is the previous one');
});

t.test('expect: absorb is for gradient faults only', async (t) => {
  const head = 'name: p\nseed: 1\nranks: 2\nexpect: absorb\nfaults:\n';
  t.equal(parseFaultPlan(`${head}  - { kind: nan_gradients, at_step: 2 }\n  - { kind: exploding_gradients, at_step: 3, target: { host: 0 } }`).expect, 'absorb');
  t.throws(() => parseFaultPlan(`${head}  - { kind: crash, at_step: 2 }`), /expect: absorb is for plans whose faults are all gradient faults/);
  t.throws(() => parseFaultPlan(`${head.replace('absorb', 'whatever')}  - { kind: crash, at_step: 2 }`), /expect: must be recover, give_up, absorb or fail_fast/);
});

t.test('a network fault that hits frames before the job arrives records its count in the job\'s output_dir, not the working directory', async (t) => {
  const dir = t.testdir();
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  const plan = parseFaultPlan('name: early\nseed: 1\nranks: 1\nfaults:\n  - kind: net_duplicate\n    p: 1\n');
  const c = new RankChaos({ seed: plan.seed, faults: plan.faults }, 0, 0, 0, logger);
  const sent: string[] = [];
  const inner = { send: (_to: string, type: string) => void sent.push(type), onFrame: () => undefined, stats: { sent: 0, received: 0, dropped: 0, sendErrors: 0 }, close: async () => undefined };
  const proxied = c.wrap(inner as never);
  // the first frame (a hello, before the welcome brings the job) is hit: duplicated
  proxied.send('coordinator:0', 'peer.heartbeat' as never, {} as never);
  t.equal(sent.length, 2, 'the frame went out twice');
  t.notOk(existsSync(join(dir, 'chaos-fired')), 'nothing written into the working directory before the job arrives');
  const out = join(dir, 'out');
  c.configure(loadJobConfig({ configPath: 'hooks.yaml', configText: `output_dir: ${out}\n`, env: {} }));
  await c.close();
  const files = readdirSync(join(out, 'chaos-fired')).filter((f) => f.startsWith('effects-'));
  t.same(files, ['effects-0-rank-0-inc-0.json'], 'the count is written into the job\'s output_dir once it is known');
  t.notOk(existsSync(join(dir, 'chaos-fired')), 'and never into the working directory');
});
