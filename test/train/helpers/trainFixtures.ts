// Small models, configs and a deterministic stand-in data source for the training-loop tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../../src/engine/model/index.js';
import { parseModelConfig } from '../../../src/engine/modelConfig.js';
import { defaultPolicyConfig, type PolicyConfig } from '../../../src/statecharts/policyConfig.js';
import type { PackedSequence, TrainConfig, TrainData } from '../../../src/train/loop/index.js';

/** A Llama of ~40k parameters (HF config.json form): fast enough for tens of steps on two busy cores. */
export const microHfConfig = {
  model_type: 'llama',
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  initializer_range: 0.05,
};
export const microConfig = parseModelConfig(microHfConfig, 'micro');

/**
 * Writes root/model/config.json: the micro Llama with the fields of `hf` changed, a directory
 * without weights (the job's seed initializes the model), and returns the directory.
 */
export function writeMicroModelDir(root: string, hf: Partial<typeof microHfConfig>): string {
  const dir = join(root, 'model');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...microHfConfig, ...hf }));
  return dir;
}

export function microModel(seed = 1): Promise<Model> {
  return Model.create(microConfig, { seed });
}

/** Sequences of arithmetic progressions mod 64 (learnable: next = this + stride), two documents each. */
export function progressionData(opts: { count: number; len: number; seed?: number }): PackedSequence[] {
  const out: PackedSequence[] = [];
  for (let k = 0; k < opts.count; k++) {
    const stride = 1 + ((k * 7 + (opts.seed ?? 0)) % 5);
    const a = Math.floor(opts.len / 3);
    const docLens = Int32Array.of(a, opts.len - a);
    const tokens = new Int32Array(opts.len);
    const labels = new Int32Array(opts.len);
    let o = 0;
    for (const [d, len] of [...docLens].entries()) {
      const start = (k * 13 + d * 29) % 64;
      for (let i = 0; i < len; i++) tokens[o + i] = (start + i * stride) % 64;
      for (let i = 0; i < len; i++) labels[o + i] = i + 1 < len ? tokens[o + i + 1]! : -100;
      o += len;
    }
    out.push({ tokens, labels, docLens });
  }
  return out;
}

/** A replica's view of `items` in a fixed rotation per epoch (a pure function of epoch and index). */
export function standInData(items: PackedSequence[], batch = 1): TrainData {
  return {
    batchesPerEpoch: Math.floor(items.length / batch),
    microBatch: (epoch, index) => Array.from({ length: batch }, (_, b) => items[(index * batch + b + epoch * 3) % items.length]!),
  };
}

export function trainConfig(outputDir: string, extra: Partial<TrainConfig> = {}): TrainConfig {
  return {
    output_dir: outputDir,
    logging_steps: 1000,
    save_steps: 1000,
    save_total_limit: null,
    per_device_train_batch_size: 1,
    gradient_accumulation_steps: 1,
    learning_rate: 1e-2,
    num_train_epochs: 1,
    max_steps: 20,
    lr_scheduler_type: 'constant',
    warmup_ratio: 0,
    warmup_steps: 0,
    max_grad_norm: 1,
    weight_decay: 0.01,
    adam_beta1: 0.9,
    adam_beta2: 0.999,
    adam_epsilon: 1e-8,
    seed: 42,
    debug: false,
    ...extra,
  };
}

export const policy = (extra: Partial<PolicyConfig> = {}): PolicyConfig => ({ ...defaultPolicyConfig, ...extra });

/**
 * Forward and backward of every sequence of `seqs` on each of `models` in turn (normalizer 40),
 * the gradients accumulating; returns each model's losses in order.
 */
export async function passLosses(models: readonly Model[], seqs: readonly PackedSequence[]): Promise<number[][]> {
  const losses: number[][] = models.map(() => []);
  for (const s of seqs) {
    for (const [k, m] of models.entries()) {
      const r = await m.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 40 });
      await m.backward();
      losses[k]!.push(r.loss);
    }
  }
  return losses;
}
