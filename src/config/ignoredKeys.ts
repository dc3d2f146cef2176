/**
 * LLaMA-Factory keys that are accepted but have no effect in this runtime, each with the reason
 * printed once at start ("ignored (no effect here): ..."). A key belongs here only when a
 * LLaMA-Factory user may reasonably carry it over from their configs; it must never shadow a
 * key of the schema (a schema key always acts).
 */
const EVAL = 'there is no evaluation loop; training only';
const INFER = 'generation/inference settings; this runtime only trains';
const EXPORT = 'model export is not part of training here (checkpoints are already HF-layout safetensors)';
const HUB = 'no model hub access: models are read from local safetensors + config.json';
const WORKERS = 'data is prepared in-process by each rank';
const QUANT = 'quantized training is not supported; weights train in fp32/bf16';
const MM = 'multimodal models are not supported (text-only Llama/Qwen)';
const RAY = 'ranks are launched by ulysses-actors up, not Ray';
const KERNELS = 'the native engine always uses its own fused kernels';
const LORA_VARIANT = 'only plain LoRA is implemented';
const LOG = 'metrics go to output_dir/metrics.jsonl and the visualizer';
const FREEZE = 'finetuning_type freeze is not supported (use full or lora)';

export const IGNORED_KEYS: Readonly<Record<string, string>> = {
  // run mode
  do_train: 'training is the only mode',
  do_eval: EVAL,
  do_predict: EVAL,
  // trust and loading
  trust_remote_code: 'no model code is ever loaded: the architecture is built in',
  cache_dir: HUB,
  model_revision: HUB,
  hf_hub_token: HUB,
  ms_hub_token: HUB,
  om_hub_token: HUB,
  use_fast_tokenizer: 'the tokenizer is read from tokenizer.json by the built-in tokenizer',
  split_special_tokens: 'special tokens are never split by the built-in tokenizer',
  low_cpu_mem_usage: 'weights are memory-mapped from safetensors already',
  infer_dtype: INFER,
  // timeouts and workers
  ddp_timeout: 'collective timeouts are set by cluster.collective_timeout_s',
  ddp_find_unused_parameters: 'gradient reduction is explicit; there is no DDP wrapper',
  ddp_broadcast_buffers: 'gradient reduction is explicit; there is no DDP wrapper',
  preprocessing_num_workers: WORKERS,
  preprocessing_batch_size: WORKERS,
  dataloader_num_workers: WORKERS,
  dataloader_pin_memory: WORKERS,
  dataloader_persistent_workers: WORKERS,
  overwrite_cache: 'no tokenized-dataset cache is kept',
  tokenized_path: 'no tokenized-dataset cache is kept',
  streaming: 'datasets are read whole (local JSON/JSONL)',
  buffer_size: 'datasets are read whole (local JSON/JSONL)',
  mix_strategy: 'datasets are concatenated in the order given',
  interleave_probs: 'datasets are concatenated in the order given',
  disable_shuffling: 'shuffling is fixed by seed for exact resume',
  data_seed: 'the data order follows seed',
  // output
  overwrite_output_dir: 'checkpoints are written atomically beside older ones; resume with resume_from_checkpoint',
  plot_loss: LOG,
  report_to: LOG,
  run_name: LOG,
  logging_dir: LOG,
  logging_first_step: LOG,
  logging_strategy: 'logging follows logging_steps',
  disable_tqdm: 'the progress bar shows on a terminal only',
  save_only_model: 'checkpoints always hold optimizer and RNG state for exact resume',
  save_strategy: 'checkpoints follow save_steps',
  save_safetensors: 'checkpoints are always safetensors',
  push_to_hub: HUB,
  hub_model_id: HUB,
  include_num_input_tokens_seen: 'tokens are always counted in metrics.jsonl',
  include_tokens_per_second: 'tokens/s is always reported in metrics.jsonl',
  include_effective_tokens_per_second: 'tokens/s is always reported in metrics.jsonl',
  print_param_status: 'parameter counts are printed at start',
  // evaluation
  val_size: EVAL,
  eval_dataset: EVAL,
  per_device_eval_batch_size: EVAL,
  eval_strategy: EVAL,
  evaluation_strategy: EVAL,
  eval_steps: EVAL,
  eval_on_each_dataset: EVAL,
  compute_accuracy: EVAL,
  load_best_model_at_end: EVAL,
  metric_for_best_model: EVAL,
  greater_is_better: EVAL,
  predict_with_generate: INFER,
  eval_num_beams: INFER,
  // generation
  infer_backend: INFER,
  max_new_tokens: INFER,
  do_sample: INFER,
  temperature: INFER,
  top_p: INFER,
  top_k: INFER,
  num_beams: INFER,
  repetition_penalty: INFER,
  length_penalty: INFER,
  vllm_maxlen: INFER,
  vllm_gpu_util: INFER,
  vllm_enforce_eager: INFER,
  // export
  export_dir: EXPORT,
  export_size: EXPORT,
  export_device: EXPORT,
  export_legacy_format: EXPORT,
  export_hub_model_id: EXPORT,
  // kernels and memory tricks
  flash_attn: KERNELS,
  shift_attn: KERNELS,
  use_unsloth: KERNELS,
  use_unsloth_gc: KERNELS,
  enable_liger_kernel: KERNELS,
  torch_compile: KERNELS,
  tf32: 'CPU training does not use TF32',
  pure_bf16: 'bf16 selects the precision; there is no pure-bf16 mode',
  gradient_checkpointing: 'activation memory is managed by the engine',
  disable_gradient_checkpointing: 'activation memory is managed by the engine',
  use_reentrant_gc: 'activation memory is managed by the engine',
  upcast_layernorm: 'norms are always computed in fp32',
  upcast_lmhead_output: 'the LM head loss is always computed in fp32',
  resize_vocab: 'the vocabulary is fixed by the model',
  new_special_tokens: 'the vocabulary is fixed by the model',
  moe_aux_loss_coef: 'mixture-of-experts models are not supported',
  optim: 'the optimizer is always AdamW',
  lr_scheduler_kwargs: 'the schedule is fixed by lr_scheduler_type, warmup_ratio and warmup_steps',
  neftune_noise_alpha: 'NEFTune is not implemented (the gradient policy adds its own noise)',
  // quantization
  quantization_bit: QUANT,
  quantization_method: QUANT,
  quantization_type: QUANT,
  double_quantization: QUANT,
  // LoRA variants and freeze tuning
  use_rslora: LORA_VARIANT,
  use_dora: LORA_VARIANT,
  pissa_init: LORA_VARIANT,
  pissa_iter: LORA_VARIANT,
  pissa_convert: LORA_VARIANT,
  loraplus_lr_ratio: LORA_VARIANT,
  loraplus_lr_embedding: LORA_VARIANT,
  additional_target: LORA_VARIANT,
  create_new_adapter: LORA_VARIANT,
  freeze_trainable_layers: FREEZE,
  freeze_trainable_modules: FREEZE,
  freeze_extra_modules: FREEZE,
  // preference training extras
  pref_ftx: 'DPO uses the plain preference loss (no SFT mixing)',
  dpo_label_smoothing: 'DPO uses the plain sigmoid loss',
  simpo_gamma: 'only the sigmoid preference loss is implemented',
  ref_model_quantization_bit: QUANT,
  // data handling extras
  train_on_prompt: 'prompt tokens are always masked from the SFT loss',
  mask_history: 'prompt tokens are always masked from the SFT loss',
  neat_packing: 'packing always keeps documents apart (attention never crosses a document boundary)',
  tool_format: 'tool-call templates are not supported',
  default_system: 'the template supplies the system prompt',
  enable_thinking: 'the template supplies the chat format',
  ignore_pad_token_for_loss: 'padding never counts in the loss',
  // multimodal
  image_max_pixels: MM,
  image_min_pixels: MM,
  video_max_pixels: MM,
  video_min_pixels: MM,
  video_fps: MM,
  video_maxlen: MM,
  media_dir: MM,
  freeze_vision_tower: MM,
  freeze_multi_modal_projector: MM,
  train_mm_proj_only: MM,
  // Ray
  ray_run_name: RAY,
  ray_storage_path: RAY,
  ray_num_workers: RAY,
  resources_per_worker: RAY,
  placement_strategy: RAY,
  ray_init_kwargs: RAY,
};

/**
 * LLaMA-Factory keys that are recognized but refused when given a value, because silently
 * ignoring them would change what is trained. A null/false value is accepted as ignored.
 */
export const UNSUPPORTED_KEYS: Readonly<Record<string, string>> = {
  fp16: 'fp16 mixed precision is not implemented; use bf16: true (bf16 weights and products, fp32 master weights) or fp32',
  adapter_name_or_path: 'starting from an existing LoRA adapter is not implemented; merge it into the base weights first',
  rope_scaling: 'RoPE scaling is not implemented (long context comes from sequence parallelism)',
  ref_model: 'a separate DPO reference model is not supported; the reference is the frozen starting weights',
  ref_model_adapters: 'a separate DPO reference model is not supported; the reference is the frozen starting weights',
};

export function isUnsupportedKey(key: string): boolean {
  return Object.prototype.hasOwnProperty.call(UNSUPPORTED_KEYS, key);
}

export function isIgnoredKey(key: string): boolean {
  return Object.prototype.hasOwnProperty.call(IGNORED_KEYS, key);
}

/** DeepSpeed JSON keys that only configure DeepSpeed's own engine. */
export const IGNORED_DEEPSPEED_KEYS: Readonly<Record<string, string>> = {
  zero_optimization: 'ZeRO sharding is not used: sequence parallelism splits activations, and replicas hold full weights',
  optimizer: 'the optimizer is AdamW set by learning_rate, weight_decay and adam_* keys',
  scheduler: 'the schedule is set by lr_scheduler_type, warmup_ratio and warmup_steps',
  fp16: 'fp16 is not supported; use bf16 or fp32',
  zero_allow_untested_optimizer: 'ZeRO is not used',
  zero_force_ds_cpu_optimizer: 'ZeRO is not used',
  steps_per_print: 'logging follows logging_steps',
  wall_clock_breakdown: 'step timings are always in metrics.jsonl',
  activation_checkpointing: 'activation memory is managed by the engine',
  communication_data_type: 'collectives run in fp32',
  flops_profiler: 'no profiler here',
  comms_logger: 'no profiler here',
  prescale_gradients: 'gradients are averaged after the all-reduce',
  gradient_predivide_factor: 'gradients are averaged after the all-reduce',
};
