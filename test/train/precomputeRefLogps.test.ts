// precompute_ref_log_probs: the reference scores every example once before training and no
// reference stays resident. As real 2-rank jobs at sequence_parallel_size 2 (coordinator, rank
// processes, Gloo; and sp 2 x dp 2), DPO and KTO, full fine-tuning and LoRA, with held-out evaluation: the same
// losses, metrics and eval metrics (1e-6 relative) and the same final weights (bitwise) as the job
// that keeps its reference; the cache is read by a later job (a cache with altered values changes
// its loss), and scored again when the model or the data changes; a resume from a checkpoint ends
// with the uninterrupted run's weights, with its cache and without it. Also the config check and
// the memory estimate.
import t, { type Test } from 'tap';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { estimateRankMemory } from '../../src/train/resourceEstimate.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { writeKtoRows, writeSpModel, writeSpPairs } from './helpers/spJob.js';

const RTOL = 1e-6;
const STEPS = 4;


type Stage = 'dpo' | 'kto';
type Tuning = 'full' | 'lora';

function jobLines(stage: Stage, tuning: Tuning, model: string, data: string): string[] {
  return [
    `model_name_or_path: ${model}`, `stage: ${stage}`, `finetuning_type: ${tuning}`, `dataset: ${data}`, 'cutoff_len: 64', 'pref_beta: 0.5',
    ...(stage === 'kto' ? ['kto_chosen_weight: 1.2', 'kto_rejected_weight: 0.8', 'pref_ftx: 0.3'] : []),
    ...(tuning === 'lora' ? ['lora_rank: 4', 'lora_alpha: 8', 'lora_target: all'] : []),
    'logging_steps: 1', 'save_steps: 2', `max_steps: ${STEPS}`, `learning_rate: ${tuning === 'lora' ? '3.0e-2' : '1.0e-2'}`, 'lr_scheduler_type: constant',
    'per_device_train_batch_size: 2', 'disable_shuffling: true', 'sequence_parallel_size: 2',
    'val_size: 0.25', 'eval_strategy: steps', 'eval_steps: 2', 'per_device_eval_batch_size: 2',
  ];
}

function runJob(dir: string, lines: string[], extra: string[] = [], world = 2) {
  return runCoordinatedJob('refcache', [...lines, `output_dir: ${dir}`, ...extra].join('\n'), world);
}

const cacheFiles = (dir: string): string[] => {
  try {
    return readdirSync(join(dir, 'token_cache', 'reference_logps')).filter((f) => f.endsWith('.f64')).sort();
  } catch {
    return [];
  }
};

/** Every numeric key the rows share, but the clocks. */
const mathKeys = (row: Record<string, unknown>) => Object.keys(row).filter((k) => typeof row[k] === 'number' && k !== 'step' && !/time|per_s|per_second|elapsed|_ms$|_s$|rss|memory/.test(k));

function sameRows(t: Test, got: Record<string, number>[], want: Record<string, number>[], what: string): void {
  t.same(got.map((m) => m.step), want.map((m) => m.step), `${what}: the same rows`);
  let worst = 0, where = '';
  let compared = 0;
  for (const [i, w] of want.entries()) {
    for (const k of mathKeys(w)) {
      const g = got[i]![k]!;
      compared++;
      const e = Math.abs(g - w[k]!) / Math.max(1e-6, Math.abs(w[k]!));
      if (!(e <= worst)) [worst, where] = [e, `${k} at step ${w.step}: ${g} vs ${w[k]}`];
    }
  }
  t.ok(compared > 0 && worst <= RTOL, `${what}: ${compared} values within ${RTOL} (worst ${worst.toExponential(2)}${where ? `, ${where}` : ''})`);
}

const evalRows = (ms: Record<string, number>[]) => ms.filter((m) => Object.keys(m).some((k) => k.startsWith('eval_')));

const uninterrupted = new Map<string, { dir: string; hashes: (string | undefined)[]; lines: string[] }>();

for (const stage of ['dpo', 'kto'] as const) {
  for (const tuning of ['full', 'lora'] as const) {
    t.test(`${stage}, ${tuning}, sp 2: precompute_ref_log_probs gives the losses, metrics and weights of the resident reference`, async (t) => {
      const root = t.testdir();
      const model = writeSpModel(root);
      const data = stage === 'dpo' ? writeSpPairs(root) : writeKtoRows(root);
      const lines = jobLines(stage, tuning, model, data);
      const base = await runJob(join(root, 'resident'), lines);
      const pre = await runJob(join(root, 'precomputed'), lines, ['precompute_ref_log_probs: true']);
      for (const [name, r] of [['resident', base], ['precomputed', pre]] as const) {
        t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'finished')}`);
        t.equal(r.result.finalHashes[0], r.result.finalHashes[1], `${name}: the SP ranks hold the same weights`);
      }
      t.ok(evalRows(base.metrics).length >= 2, `evaluation ran (${evalRows(base.metrics).length} rows with eval_ metrics)`);
      sameRows(t, pre.metrics, base.metrics, 'training and evaluation rows');
      t.equal(pre.result.finalHashes[0], base.result.finalHashes[0], 'the final weights are bitwise those of the resident reference');
      t.same(cacheFiles(join(root, 'precomputed')).length, 1, 'one reference cache file beside the token cache');
      t.same(cacheFiles(join(root, 'resident')), [], 'the resident run writes none');
      if (stage === 'dpo' && tuning === 'full') t.ok(Math.abs(pre.metrics[0]!.loss! - Math.LN2) < 1e-6, `step 1 scores the initial weights against themselves: loss log 2 (${pre.metrics[0]!.loss})`);
      uninterrupted.set(`${stage}-${tuning}`, { dir: join(root, 'precomputed'), hashes: pre.result.finalHashes, lines });
      if (stage === 'dpo' && tuning === 'full') await cacheChecks(t, root, lines, model, join(root, 'precomputed'));
      if (tuning === 'full') await resumeChecks(t, root, lines, join(root, 'precomputed'), pre.result.finalHashes);
    });
  }
}

t.test('sp 2 x dp 2: every replica scores its share, and the losses and weights are the resident reference\'s (dpo full, kto lora)', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  for (const [stage, tuning] of [['dpo', 'full'], ['kto', 'lora']] as const) {
    const lines = jobLines(stage, tuning, model, stage === 'dpo' ? writeSpPairs(root) : writeKtoRows(root, 12));
    const base = await runJob(join(root, `${stage}-resident`), lines, [], 4);
    const pre = await runJob(join(root, `${stage}-precomputed`), lines, ['precompute_ref_log_probs: true'], 4);
    t.equal(base.result.ok, true, `${stage} resident: ${String(base.result.reason ?? 'finished')}`);
    t.equal(pre.result.ok, true, `${stage} precomputed: ${String(pre.result.reason ?? 'finished')}`);
    sameRows(t, pre.metrics, base.metrics, `${stage} ${tuning}: training and evaluation rows`);
    t.same(pre.result.finalHashes, base.result.finalHashes, `${stage} ${tuning}: every rank ends with the resident reference's weights`);
  }
});

/**
 * A later job reads the cache (values altered in place, the key kept, change its step-1 loss),
 * and scores again when the model or the data changes (a new file; step 1 back at log 2).
 */
async function cacheChecks(t: Test, root: string, lines: string[], model: string, first: string): Promise<void> {
  const [file] = cacheFiles(first);
  const seeded = (name: string) => {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    cpSync(join(first, 'token_cache'), join(dir, 'token_cache'), { recursive: true });
    // the chosen sides' reference sums raised by 1: a job that reads them sees a margin at step 1
    const path = join(dir, 'token_cache', 'reference_logps', file!);
    const b = readFileSync(path);
    for (let o = 48; o < b.length; o += 16) b.writeDoubleLE(b.readDoubleLE(o) + 1, o);
    writeFileSync(path, b);
    return { dir, path, bytes: Buffer.from(b) };
  };
  const pre = ['precompute_ref_log_probs: true'];

  const reuse = seeded('reuse');
  const r = await runJob(reuse.dir, lines, pre);
  t.equal(r.result.ok, true, String(r.result.reason ?? 'the job finished'));
  // z = β((πc − ρc − 1) − (πr − ρr)) = −β at step 1: loss log(1 + e^β)
  const want = Math.log1p(Math.exp(0.5));
  t.ok(Math.abs(r.metrics[0]!.loss! - want) < 1e-6, `the second job read the cache: step-1 loss ${r.metrics[0]!.loss} = log(1 + e^0.5) ${want}`);
  t.same(cacheFiles(reuse.dir), [file], 'no new cache file');
  t.equal(Buffer.compare(readFileSync(reuse.path), reuse.bytes), 0, 'the cache file is left as it was');

  const other = writeSpModel(join(root, 'other-model'));
  writeFileSync(join(other, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(other, 'config.json'), 'utf8')), rms_norm_eps: 1e-6 }));
  const changed = seeded('model-changed');
  const m = await runJob(changed.dir, lines.map((l) => (l === `model_name_or_path: ${model}` ? `model_name_or_path: ${other}` : l)), pre);
  t.equal(m.result.ok, true, String(m.result.reason ?? 'the job finished'));
  t.equal(cacheFiles(changed.dir).length, 2, 'another model: scored again into a new file');
  t.ok(Math.abs(m.metrics[0]!.loss! - Math.LN2) < 1e-6, `another model: step-1 loss log 2 (${m.metrics[0]!.loss})`);

  const dataDir = join(root, 'other-data');
  mkdirSync(dataDir, { recursive: true });
  const pairs = writeSpPairs(dataDir);
  writeFileSync(pairs, readFileSync(pairs, 'utf8').replace('Question 3', 'Question three'));
  const moved = seeded('data-changed');
  const d = await runJob(moved.dir, lines.map((l) => (l.startsWith('dataset: ') ? `dataset: ${pairs}` : l)), pre);
  t.equal(d.result.ok, true, String(d.result.reason ?? 'the job finished'));
  t.equal(cacheFiles(moved.dir).length, 2, 'other data: scored again into a new file');
  t.ok(Math.abs(d.metrics[0]!.loss! - Math.LN2) < 1e-6, `other data: step-1 loss log 2 (${d.metrics[0]!.loss})`);
}

/** Resumed from the step-2 checkpoint, with the cache and without it: the uninterrupted weights. */
async function resumeChecks(t: Test, root: string, lines: string[], first: string, hashes: (string | undefined)[]): Promise<void> {
  for (const withCache of [true, false]) {
    const dir = join(root, withCache ? 'resumed-cached' : 'resumed-scored');
    mkdirSync(dir, { recursive: true });
    cpSync(join(first, 'checkpoint-2'), join(dir, 'checkpoint-2'), { recursive: true });
    if (withCache) cpSync(join(first, 'token_cache'), join(dir, 'token_cache'), { recursive: true });
    const r = await runJob(dir, lines, ['precompute_ref_log_probs: true', 'resume_from_checkpoint: true']);
    t.equal(r.result.ok, true, String(r.result.reason ?? 'the job finished'));
    t.same(r.metrics.filter((m) => m.loss !== undefined).map((m) => m.step), [3, 4], 'only the steps after the checkpoint run');
    t.same(r.result.finalHashes, hashes, `resumed ${withCache ? 'with the cache' : 'scoring the initial weights again'}: bitwise the uninterrupted weights`);
  }
}

t.test('config: refused where there is no reference', async (t) => {
  const load = (lines: string[]) => () => loadJobConfig({ configPath: 'job.yaml', configText: ['model_name_or_path: tiny', 'dataset: builtin:recall', ...lines].join('\n'), env: {} });
  t.throws(load(['stage: sft', 'precompute_ref_log_probs: true']), /precompute_ref_log_probs[\s\S]*only has an effect with a reference model/);
  t.throws(load(['stage: dpo', 'pref_loss: simpo', 'precompute_ref_log_probs: true']), /reference-free/);
  t.equal(loadJobConfig({ configPath: 'job.yaml', configText: 'model_name_or_path: tiny\nstage: kto\ndataset: x\nprecompute_ref_log_probs: true', env: {} }).config.precompute_ref_log_probs, true);
  t.equal(loadJobConfig({ configPath: 'job.yaml', configText: 'model_name_or_path: tiny\nstage: dpo\ndataset: x', env: {} }).config.precompute_ref_log_probs, false, 'off by default');
});

t.test('memory estimate: no reference copy with precompute_ref_log_probs', async (t) => {
  const dims = { vocab: 32000, hidden: 2048, intermediate: 5632, layers: 22, heads: 32, kvHeads: 4, headDim: 64, tied: false };
  const x = { dims, finetuning: 'full', loraRank: 8, stage: 'dpo', bf16: false, cutoffLen: 4096, sp: 2, batch: 1 } as const;
  const resident = estimateRankMemory(x);
  const pre = estimateRankMemory({ ...x, precomputedReference: true });
  t.ok(resident.parts.some((p) => p.name === 'DPO reference copy'), 'the resident reference is counted');
  t.notOk(pre.parts.some((p) => p.name === 'DPO reference copy'), 'precomputed: no copy');
  t.equal(resident.totalBytes - pre.totalBytes, resident.params * 4, `saves the fp32 copy: ${((resident.params * 4) / 1e9).toFixed(2)} GB per rank`);
  // ZeRO 3 shards the frozen copy like the weights (this rank's part and one gathered layer)
  const z3 = estimateRankMemory({ ...x, zeroStage: 3, world: 4 });
  const copy = z3.parts.find((p) => p.name === 'DPO reference copy')!.bytes;
  t.equal(copy, z3.parts.find((p) => p.name.startsWith('weights'))!.bytes, `ZeRO 3, world 4: the copy is sharded like the weights (${(copy / 1e9).toFixed(2)} GB per rank)`);
  t.ok(copy < (resident.params * 4) / 3, 'about a quarter of the whole copy');
});
