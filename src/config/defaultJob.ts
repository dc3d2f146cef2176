/**
 * The embedded default job (`npm start`, `ulysses-actors up` with no config): this machine,
 * 2 ranks with sequence_parallel_size 2, the tiny model, and the bundled synthetic passkey
 * task (`builtin:passkey`, see trainWorkload.ts) with 2048-token sequences: a key–value pair in
 * the first quarter of the sequence (rank 0's shard), the question about it ~1000 tokens later
 * (rank 1's shard), so the answer can only be learned if attention spans both shards. Sized to
 * finish within 5 minutes on a 2-core machine; the held-out recall accuracy (argmax, chance
 * 10%) is printed before and after training. Each run replaces the previous one in saves/default
 * (overwrite_output_dir), so `npm start` can run again and again, and writes training_loss.png
 * (plot_loss). The config loader resolves this text exactly like a user's YAML file; it must
 * never name machine-specific paths.
 */

/** What `up` prints as the config's name when it uses the embedded job. */
export const DEFAULT_JOB_NAME = 'the embedded default job';

export const DEFAULT_JOB_YAML = `# ${DEFAULT_JOB_NAME}: passkey recall across 2 sequence-parallel ranks (tiny model)
model_name_or_path: tiny
stage: sft
finetuning_type: full

dataset: builtin:passkey
cutoff_len: 2048
packing: false

output_dir: saves/default
overwrite_output_dir: true
plot_loss: true
logging_steps: 10
save_steps: 100
save_total_limit: 2

per_device_train_batch_size: 1
gradient_accumulation_steps: 1
learning_rate: 3.0e-3
max_steps: 400
lr_scheduler_type: cosine
warmup_steps: 10
max_grad_norm: 1.0
weight_decay: 0.01
adam_beta2: 0.98
seed: 42
sequence_parallel_size: 2

gradient_policy:
  enabled: true
  centralize: linear

cluster:
  step_timeout_s: 120
  max_restarts: 1
`;
