/**
 * The resolved job configuration as a typed object, snake_case exactly as written in job YAML
 * (so printing it gives a valid job file). Pure types; must never hold defaults (schema.ts does).
 */
export interface JobConfig {
  model_name_or_path: string;
  stage: 'pt' | 'sft' | 'dpo' | 'rm' | 'kto';
  finetuning_type: 'full' | 'lora';
  lora_rank: number;
  /** resolved: 2 * lora_rank when not given */
  lora_alpha: number;
  lora_dropout: number;
  /** ['all'] means every linear layer */
  lora_target: string[];
  dataset: string[];
  dataset_dir: string;
  template: 'default' | 'llama3' | 'qwen' | 'qwen3' | 'qwen3_nothink' | 'chatml' | 'mistral';
  default_system: string | null;
  enable_thinking: boolean;
  train_on_prompt: boolean;
  mask_history: boolean;
  cutoff_len: number;
  max_samples: number | null;
  /** resolved: true for pt, false otherwise, when not given */
  packing: boolean;
  neat_packing: boolean;
  disable_shuffling: boolean;
  data_seed: number | null;
  do_eval: boolean;
  /** 0: no split; below 1: a share of the training items; above 1: a count */
  val_size: number;
  eval_dataset: string[];
  eval_strategy: 'no' | 'steps' | 'epoch';
  /** null: logging_steps; below 1: a fraction of the total steps */
  eval_steps: number | null;
  per_device_eval_batch_size: number;
  compute_accuracy: boolean;
  eval_on_each_dataset: boolean;
  /** the token cache directory (null: output_dir/token_cache/<digest>) */
  tokenized_path: string | null;
  overwrite_cache: boolean;
  /** tokenizer threads for the token cache (null: cores - 1) */
  preprocessing_num_workers: number | null;
  output_dir: string;
  overwrite_output_dir: boolean;
  plot_loss: boolean;
  logging_steps: number;
  save_steps: number;
  save_total_limit: number | null;
  /** a checkpoint directory, true (latest in output_dir) or null */
  resume_from_checkpoint: string | true | null;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  num_train_epochs: number;
  /** -1: derive from num_train_epochs */
  max_steps: number;
  lr_scheduler_type: 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';
  warmup_ratio: number;
  warmup_steps: number;
  max_grad_norm: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  pref_beta: number;
  pref_loss: 'sigmoid' | 'orpo' | 'simpo' | 'ipo' | 'hinge';
  pref_ftx: number;
  kto_chosen_weight: number;
  kto_rejected_weight: number;
  preprocessing_batch_size: number;
  simpo_gamma: number;
  dpo_label_smoothing: number;
  /** dpo/kto: reference log-probs scored once before training, cached, no reference resident */
  precompute_ref_log_probs: boolean;
  seed: number;
  bf16: boolean;
  /** ZeRO stage over the whole world: 0 or 1 (moments partitioned) */
  zero_stage: number;
  /** MLP over token tiles (engine Model.setMlpTiling) */
  tiled_mlp: boolean;
  sequence_parallel_size: number;
  deepspeed: string | null;
  /** null: cuda when a GPU is visible and the addon can run its CUDA model, else cpu */
  device: 'cpu' | 'cuda' | null;
  debug: boolean;
  /** PEFT adapter directories (null: none) */
  adapter_name_or_path: string[] | null;
  export_dir: string | null;
  /** GB (10^9 bytes) per shard */
  export_size: number;
  export_device: 'cpu' | 'auto';
  export_legacy_format: boolean;
  export_quantization_bit: number | null;
  export_hub_model_id: string | null;
  infer_dtype: 'auto' | 'float16' | 'bfloat16' | 'float32';
  do_sample: boolean;
  temperature: number;
  top_p: number;
  top_k: number;
  max_new_tokens: number;
  repetition_penalty: number;
  gradient_policy: {
    enabled: boolean;
    vanishing: { threshold: number; exit_threshold: number; noise_std: number; scale_threshold: number; scale_factor: number; lr_boost: number };
    late_stage: { start_fraction: number; vanishing_threshold: number; exit_threshold: number; noise_std: number; scale_threshold: number; scale_factor: number };
    explode: { threshold: number; clip_norm: number };
    centralize: 'linear' | 'all' | 'none';
    nonfinite_patience: number;
    /** testing switch: "FROM-TO:FACTOR[,...]" scales the loss on those optimizer steps */
    loss_scale_schedule: string | null;
  };
  cluster: {
    heartbeat_interval_s: number;
    heartbeat_miss_limit: number;
    step_timeout_s: number;
    collective_timeout_s: number;
    rendezvous_timeout_s: number;
    max_restarts: number;
    restart_window_s: number;
    shutdown_grace_s: number;
    startup_grace_s: number;
    coordinator_grace_s: number;
    standby_ranks: boolean;
    coordinator_port: number;
    bind_address: string;
    advertise_address: string | null;
    launcher: 'local' | 'ssh' | 'external';
    agent_command: string;
    ssh: {
      port: number | null;
      user: string | null;
      identity_file: string | null;
      strict_host_key_checking: 'yes' | 'accept-new' | 'no';
      connect_timeout_s: number;
      options: string[];
    };
    visualizer: { enabled: boolean; port: number; host: string };
  };
}
