/**
 * LLaMA-Factory keys that are accepted but have no effect in this runtime, each with the reason
 * printed once at start ("ignored (no effect here): ..."). A key belongs here only when it truly
 * makes no difference to what is trained (same math, logging, workers, inference settings); a key
 * that would change training is either a schema key (it acts) or in UNSUPPORTED_KEYS (refused).
 * Must never shadow a key of the schema.
 */
const INFER = 'a generation setting this runtime does not use (chat reads do_sample, temperature, top_p, top_k, max_new_tokens and repetition_penalty)';
const HUB = 'no model hub access: models are read from local safetensors + config.json';
const WORKERS = 'the token cache is built by preprocessing_num_workers tokenizer threads; training reads it mapped, in process';
const QUANT_DETAIL = 'only used with quantization_bit, which is refused';
const MM = 'multimodal models are not supported (text-only Llama/Qwen)';
const RAY = 'ranks are launched by ulysses-actors up, not Ray';
const KERNELS = 'the native engine always uses its own fused kernels';
const LOG = 'metrics go to output_dir/metrics.jsonl and the visualizer';
const FREEZE = 'finetuning_type freeze is refused (use full or lora), so these select nothing';
const ONLY_WITH = (k: string) => `only used with ${k}, which is refused`;
const PLAIN_LORA = 'only plain LoRA is implemented (lora_rank, lora_alpha, lora_dropout, lora_target): remove it';

export const IGNORED_KEYS: Readonly<Record<string, string>> = {
  // run mode
  do_train: 'training is the only mode',
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
  // timeouts and workers
  ddp_timeout: 'collective timeouts are set by cluster.collective_timeout_s',
  ddp_find_unused_parameters: 'gradient reduction is explicit; there is no DDP wrapper',
  ddp_broadcast_buffers: 'gradient reduction is explicit; there is no DDP wrapper',
  dataloader_num_workers: WORKERS,
  dataloader_pin_memory: WORKERS,
  dataloader_persistent_workers: WORKERS,
  buffer_size: ONLY_WITH('streaming'),
  interleave_probs: ONLY_WITH('an interleave mix_strategy'),
  // output
  report_to: LOG,
  run_name: LOG,
  logging_dir: LOG,
  logging_first_step: 'step 1 is always logged',
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
  metric_for_best_model: ONLY_WITH('load_best_model_at_end'),
  greater_is_better: ONLY_WITH('load_best_model_at_end'),
  eval_num_beams: INFER,
  // generation
  infer_backend: INFER,
  num_beams: INFER,
  length_penalty: INFER,
  vllm_maxlen: INFER,
  vllm_gpu_util: INFER,
  vllm_enforce_eager: INFER,
  // kernels and memory tricks (same math)
  flash_attn: KERNELS,
  use_unsloth: KERNELS,
  use_unsloth_gc: KERNELS,
  enable_liger_kernel: KERNELS,
  torch_compile: KERNELS,
  tf32: 'CPU training does not use TF32',
  gradient_checkpointing: 'activation memory is managed by the engine',
  disable_gradient_checkpointing: 'activation memory is managed by the engine',
  use_reentrant_gc: 'activation memory is managed by the engine',
  upcast_layernorm: 'norms are always computed in fp32',
  upcast_lmhead_output: 'the LM head loss is always computed in fp32',
  moe_aux_loss_coef: 'mixture-of-experts models are refused by the engine, so there is no auxiliary loss',
  // quantization details
  quantization_method: QUANT_DETAIL,
  quantization_type: QUANT_DETAIL,
  double_quantization: QUANT_DETAIL,
  ref_model_quantization_bit: 'there is no separate DPO reference model to quantize',
  // LoRA variant details and freeze tuning
  pissa_iter: ONLY_WITH('pissa_init'),
  loraplus_lr_embedding: ONLY_WITH('loraplus_lr_ratio'),
  create_new_adapter: ONLY_WITH('adapter_name_or_path'),
  freeze_trainable_layers: FREEZE,
  freeze_trainable_modules: FREEZE,
  freeze_extra_modules: FREEZE,
  // data handling extras
  tool_format: 'tool-call columns are not read (the formats here have no tools)',
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
 * LLaMA-Factory keys that are recognized but refused when given a value that changes what is
 * trained, because silently ignoring them would train something else. Each reason names what is
 * supported instead. A null/false/empty value, or one of the key's INERT_VALUES (LLaMA-Factory's
 * own default), is accepted as not set.
 */
export const UNSUPPORTED_KEYS: Readonly<Record<string, string>> = {
  rope_scaling: 'the job cannot rescale RoPE; put rope_scaling (linear, dynamic, llama3 or yarn) into the model\'s config.json, which the engine computes',
  ref_model: 'a separate DPO reference model is not supported; the reference is the frozen starting weights',
  ref_model_adapters: 'a separate DPO reference model is not supported; the reference is the frozen starting weights',
  do_predict: 'prediction with generation is not implemented; evaluation (do_eval, eval_strategy) reports eval_loss',
  predict_with_generate: 'prediction with generation is not implemented; evaluation (do_eval, eval_strategy) reports eval_loss',
  load_best_model_at_end: 'the final model is the last step\'s; pick the best checkpoint by eval_loss in metrics.jsonl (checkpoint-<step>/ are HF directories)',
  evaluation_strategy: 'renamed eval_strategy in transformers: use eval_strategy',
  streaming: 'rows are always read as a stream into the token cache, which every rank then maps (there is no iterable dataset; streaming: false is accepted)',
  mix_strategy: 'datasets are concatenated in the order given (mix_strategy concat); interleaving is not implemented',
  fp16: 'fp16 is not supported: use bf16: true (fp32 master weights) or neither (fp32)',
  pure_bf16: 'pure bf16 (no fp32 master weights) is not supported: use bf16: true',
  quantization_bit: 'quantized (QLoRA) training is not supported: weights train in fp32 or with bf16: true',
  use_dora: PLAIN_LORA,
  use_rslora: PLAIN_LORA,
  pissa_init: PLAIN_LORA,
  pissa_convert: PLAIN_LORA,
  loraplus_lr_ratio: 'LoRA+ is not implemented: every adapter trains with learning_rate',
  additional_target: 'extra fully trained modules beside LoRA are not supported: lora_target lists what LoRA adapts (finetuning_type full trains everything)',
  new_special_tokens: 'the vocabulary is fixed by the model: adding tokens is not supported',
  resize_vocab: 'the vocabulary is fixed by the model: resizing it is not supported',
  neftune_noise_alpha: 'NEFTune embedding noise is not implemented (the gradient policy adds its own noise): remove it',
  shift_attn: 'shift short attention (S²-Attn) is not implemented: attention is always full causal (long context comes from sequence parallelism)',
  optim: 'the optimizer is always AdamW (adam_beta1, adam_beta2, adam_epsilon, weight_decay): use adamw_torch or remove it',
  lr_scheduler_kwargs: 'the schedule is set by lr_scheduler_type, warmup_ratio and warmup_steps only: remove it',
};

/** Values of refused keys that mean "not used" (LLaMA-Factory's and transformers' defaults). */
export const INERT_VALUES: Readonly<Record<string, readonly unknown[]>> = {
  neftune_noise_alpha: [0],
  mix_strategy: ['concat'],
  evaluation_strategy: ['no'],
  optim: ['adamw_torch', 'adamw_torch_fused', 'adamw_hf'],
};

/** Whether a refused key's value leaves training unchanged (absent, null, false, empty, or its default). */
export function isInertValue(key: string, v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '') return true;
  if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0) return true;
  return (INERT_VALUES[key] ?? []).some((x) => x === v);
}

export function isUnsupportedKey(key: string): boolean {
  return Object.prototype.hasOwnProperty.call(UNSUPPORTED_KEYS, key);
}

export function isIgnoredKey(key: string): boolean {
  return Object.prototype.hasOwnProperty.call(IGNORED_KEYS, key);
}

/** DeepSpeed JSON keys that only configure DeepSpeed's own engine. */
export const IGNORED_DEEPSPEED_KEYS: Readonly<Record<string, string>> = {
  zero_optimization: 'only its stage is read (as zero_stage, 0-3); buckets and prefetch sizes (fixed here), overlap, offload and the other stage-3 settings have no counterpart here',
  optimizer: 'the optimizer is AdamW set by learning_rate, weight_decay and adam_* keys',
  scheduler: 'the schedule is set by lr_scheduler_type, warmup_ratio and warmup_steps',
  fp16: 'fp16 is not supported; use bf16 or fp32',
  zero_allow_untested_optimizer: 'the optimizer is always AdamW, which zero_stage supports',
  zero_force_ds_cpu_optimizer: 'the optimizer always runs on the CPU here',
  steps_per_print: 'logging follows logging_steps',
  wall_clock_breakdown: 'step timings are always in metrics.jsonl',
  activation_checkpointing: 'activation memory is managed by the engine',
  communication_data_type: 'collectives run in fp32',
  flops_profiler: 'no profiler here',
  comms_logger: 'no profiler here',
  prescale_gradients: 'gradients are averaged after the all-reduce',
  gradient_predivide_factor: 'gradients are averaged after the all-reduce',
};
