import t from 'tap';
import { IGNORED_KEYS, LEAVES, LEAF_BY_PATH, UNSUPPORTED_KEYS, envName } from '../../src/config/index.js';
import { createConvict } from '../../src/config/convictSchema.js';
import { suggest } from '../../src/config/suggest.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';

t.test('the convict schema holds every leaf default', async (t) => {
  const props = createConvict().getProperties();
  for (const l of LEAVES) {
    const v = l.path.split('.').reduce((o, k) => (o as Record<string, unknown>)[k], props as unknown);
    t.same(v, l.default, `${l.path}`);
  }
  t.doesNotThrow(() => createConvict().validate({ allowed: 'strict' }), 'defaults validate under convict');
});

t.test('gradient_policy defaults come from defaultPolicyConfig', async (t) => {
  t.equal(LEAF_BY_PATH.get('gradient_policy.vanishing.exit_threshold')!.default, defaultPolicyConfig.vanishing.exitThreshold);
  t.equal(LEAF_BY_PATH.get('gradient_policy.late_stage.start_fraction')!.default, defaultPolicyConfig.lateStage.startFraction);
  t.equal(LEAF_BY_PATH.get('gradient_policy.nonfinite_patience')!.default, defaultPolicyConfig.nonfinitePatience);
});

t.test('cluster defaults: heartbeat 1 s, 3 misses, loopback binds, ephemeral port', async (t) => {
  const d = (p: string) => LEAF_BY_PATH.get(p)!.default;
  t.equal(d('cluster.heartbeat_interval_s'), 1);
  t.equal(d('cluster.heartbeat_miss_limit'), 3);
  t.equal(d('cluster.bind_address'), '127.0.0.1');
  t.equal(d('cluster.visualizer.host'), '127.0.0.1');
  t.equal(d('cluster.coordinator_port'), 0);
  t.equal(d('cluster.launcher'), 'local');
});

t.test('environment names are unique and ULYSSES_<KEY>', async (t) => {
  const names = LEAVES.map((l) => envName(l.path));
  t.equal(new Set(names).size, names.length, 'no two keys share an env name');
  t.equal(envName('cluster.visualizer.port'), 'ULYSSES_CLUSTER_VISUALIZER_PORT');
});

t.test('ignored keys never shadow schema keys', async (t) => {
  for (const k of [...Object.keys(IGNORED_KEYS), ...Object.keys(UNSUPPORTED_KEYS)]) t.notOk(LEAF_BY_PATH.has(k), `${k} is not a schema key`);
  for (const k of Object.keys(UNSUPPORTED_KEYS)) t.notOk(k in IGNORED_KEYS, `${k} is either ignored or unsupported, not both`);
});

// Keys found in LLaMA-Factory's examples/ (train_lora, train_full, train_qlora, deepspeed, merge,
// inference, extras): each must be either a key we implement or an ignored one.
const LLAMA_FACTORY_KEYS = `model_name_or_path adapter_name_or_path trust_remote_code stage do_train finetuning_type lora_rank
lora_target lora_alpha lora_dropout deepspeed dataset template cutoff_len max_samples overwrite_cache
preprocessing_num_workers dataloader_num_workers output_dir logging_steps save_steps plot_loss
overwrite_output_dir save_only_model report_to per_device_train_batch_size gradient_accumulation_steps
learning_rate num_train_epochs lr_scheduler_type warmup_ratio bf16 ddp_timeout resume_from_checkpoint
val_size per_device_eval_batch_size eval_strategy eval_steps pref_beta pref_loss flash_attn resize_vocab
use_unsloth enable_liger_kernel quantization_bit quantization_method double_quantization use_dora use_rslora
pissa_init pissa_iter pissa_convert loraplus_lr_ratio freeze_trainable_layers freeze_trainable_modules
image_max_pixels video_max_pixels freeze_vision_tower freeze_multi_modal_projector train_mm_proj_only
dataset_dir max_steps packing neat_packing rope_scaling shift_attn upcast_layernorm neftune_noise_alpha
use_unsloth_gc seed weight_decay max_grad_norm warmup_steps save_total_limit fp16 pure_bf16
optim infer_backend export_dir export_size export_device export_legacy_format do_predict predict_with_generate
eval_dataset tokenized_path streaming buffer_size mix_strategy include_num_input_tokens_seen
ray_run_name ray_num_workers resources_per_worker placement_strategy ray_storage_path
default_system enable_thinking mask_history train_on_prompt moe_aux_loss_coef tf32 ddp_find_unused_parameters
data_seed disable_shuffling upcast_lmhead_output simpo_gamma pref_ftx ref_model sequence_parallel_size`.split(/\s+/);

t.test('every key of LLaMA-Factory example configs is recognized', async (t) => {
  const unknown = LLAMA_FACTORY_KEYS.filter((k) => !LEAF_BY_PATH.has(k) && !(k in IGNORED_KEYS) && !(k in UNSUPPORTED_KEYS));
  t.same(unknown, [], 'unrecognized: ' + unknown.join(', '));
});

t.test('did-you-mean: near misses suggested, far-off words not', async (t) => {
  const keys = [...LEAF_BY_PATH.keys()];
  t.equal(suggest('learning_rat', keys), 'learning_rate');
  t.equal(suggest('lerning-rate', keys), 'learning_rate', 'dashes and a transposition');
  t.equal(suggest('lora_rnak', keys), 'lora_rank');
  t.equal(suggest('epochs', ['num_train_epochs', 'seed']), 'num_train_epochs', 'a whole part of a key');
  t.equal(suggest('zzzz_qqqq', keys), undefined);
});
