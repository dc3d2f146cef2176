/**
 * The resolved job configuration as a typed object, snake_case exactly as written in job YAML
 * (so printing it gives a valid job file). Pure types; must never hold defaults (schema.ts does).
 */
export interface JobConfig {
  model_name_or_path: string;
  stage: 'pt' | 'sft' | 'dpo';
  finetuning_type: 'full' | 'lora';
  lora_rank: number;
  /** resolved: 2 * lora_rank when not given */
  lora_alpha: number;
  lora_dropout: number;
  /** ['all'] means every linear layer */
  lora_target: string[];
  dataset: string[];
  dataset_dir: string;
  template: 'default' | 'llama3' | 'qwen' | 'qwen3' | 'mistral';
  cutoff_len: number;
  max_samples: number | null;
  /** resolved: true for pt, false otherwise, when not given */
  packing: boolean;
  output_dir: string;
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
  pref_loss: 'sigmoid';
  seed: number;
  bf16: boolean;
  sequence_parallel_size: number;
  deepspeed: string | null;
  /** null: cuda when a GPU is visible and the addon can run its CUDA model, else cpu */
  device: 'cpu' | 'cuda' | null;
  debug: boolean;
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
