/**
 * The job configuration schema: LLaMA-Factory's training keys plus our `gradient_policy:` and
 * `cluster:` sections, declared once as leaf specs (defaults, docs, formats; convictSchema.ts
 * turns them into convict's form). Also the strict string coercion used for environment variables and flags.
 * Pure: reads no files and no environment; must never hold run state.
 */
import { defaultPolicyConfig as P } from '../statecharts/policyConfig.js';

export type LeafKind = 'int' | 'number' | 'bool' | 'string' | 'enum' | 'list' | 'resume';

export interface LeafSpec {
  /** dotted path, snake_case as written in YAML */
  path: string;
  kind: LeafKind;
  default: unknown;
  doc: string;
  /** inclusive bounds for numbers */
  min?: number;
  max?: number;
  /** exclusive lower bound for numbers (e.g. learning_rate > 0) */
  above?: number;
  /** also accept exactly this number (e.g. max_steps: -1 = unset) */
  sentinel?: number;
  values?: readonly string[];
  /** null is a meaningful value ("unset") */
  nullable?: boolean;
}

const POLICY = 'gradient_policy';

export const LEAVES: readonly LeafSpec[] = [
  // model and method
  { path: 'model_name_or_path', kind: 'string', default: 'examples/models/tiny', doc: 'directory with config.json, model.safetensors and tokenizer.json' },
  { path: 'stage', kind: 'enum', values: ['pt', 'sft', 'dpo', 'rm', 'kto'], default: 'sft', doc: 'pt: pre-training, sft: supervised fine-tuning, dpo: preference training, rm: reward modelling (a value head on preference pairs), kto: KTO on answers tagged desirable or not (kto_tag)' },
  { path: 'finetuning_type', kind: 'enum', values: ['full', 'lora'], default: 'lora', doc: 'train all weights or LoRA adapters' },
  { path: 'lora_rank', kind: 'int', min: 1, default: 8, doc: 'LoRA rank r' },
  { path: 'lora_alpha', kind: 'number', above: 0, default: null, nullable: true, doc: 'LoRA scale numerator (null: 2 * lora_rank, as LLaMA-Factory)' },
  { path: 'lora_dropout', kind: 'number', min: 0, max: 0.999, default: 0, doc: 'dropout on the LoRA input' },
  { path: 'lora_target', kind: 'list', default: ['all'], doc: '`all` (every linear layer) or module names (q_proj,v_proj,...)' },
  // data
  { path: 'dataset', kind: 'list', default: [], doc: 'dataset names from dataset_dir/dataset_info.json, comma separated' },
  { path: 'dataset_dir', kind: 'string', default: 'data', doc: 'folder holding dataset_info.json and the data files' },
  { path: 'template', kind: 'enum', values: ['default', 'llama3', 'qwen', 'qwen3', 'qwen3_nothink', 'chatml', 'mistral'], default: 'default', doc: 'chat template for sft/dpo' },
  { path: 'default_system', kind: 'string', default: null, nullable: true, doc: 'system prompt for examples that give none (null: the template\'s own)' },
  { path: 'enable_thinking', kind: 'bool', default: true, doc: 'reasoning templates (qwen3): false drops the thoughts and puts the empty thought in the prompt, untrained' },
  { path: 'train_on_prompt', kind: 'bool', default: false, doc: 'sft: also train on the prompt tokens (system, user turns)' },
  { path: 'mask_history', kind: 'bool', default: false, doc: 'sft: train on the last turn only; earlier turns are context (kept first when cutoff_len truncates)' },
  { path: 'cutoff_len', kind: 'int', min: 1, default: 2048, doc: 'tokens per sequence (split across sequence_parallel_size ranks)' },
  { path: 'max_samples', kind: 'int', min: 1, default: null, nullable: true, doc: 'use at most this many samples per dataset (null: all)' },
  { path: 'packing', kind: 'bool', default: null, nullable: true, doc: 'pack samples into cutoff_len sequences (null: true for pt or with neat_packing, false otherwise); attention never crosses a document' },
  { path: 'neat_packing', kind: 'bool', default: false, doc: 'pack without cross-document attention (what packing always does here); true turns packing on' },
  { path: 'disable_shuffling', kind: 'bool', default: false, doc: 'read the training items in their order instead of a seeded shuffle per epoch' },
  { path: 'data_seed', kind: 'int', min: 0, max: 2 ** 32 - 1, default: null, nullable: true, doc: 'seed of the data order (null: seed)' },
  { path: 'tokenized_path', kind: 'string', default: null, nullable: true, doc: 'token cache directory: loaded as it is when it holds one (the data keys are then ignored, as in LLaMA-Factory), else built there (null: output_dir/token_cache/<digest>)' },
  { path: 'overwrite_cache', kind: 'bool', default: false, doc: 'rebuild the token cache in output_dir even when one of the same digest exists' },
  { path: 'preprocessing_batch_size', kind: 'int', min: 1, default: 1000, doc: 'kto: rows per preprocessing batch, within which each example\'s KL sequence takes the previous example\'s answer (LLaMA-Factory\'s map batch size); no effect on other stages' },
  { path: 'preprocessing_num_workers', kind: 'int', min: 1, default: null, nullable: true, doc: 'tokenizer threads that build the token cache (null: cores - 1, at least 1)' },
  // evaluation
  { path: 'do_eval', kind: 'bool', default: false, doc: 'evaluate once more after training and write eval_results.json (needs val_size or eval_dataset)' },
  { path: 'val_size', kind: 'number', min: 0, default: 0, doc: 'held-out share of the training items (0..1), or a count (> 1), split with seed' },
  { path: 'eval_dataset', kind: 'list', default: [], doc: 'dataset names (as dataset) evaluated instead of a split of the training data' },
  { path: 'eval_strategy', kind: 'enum', values: ['no', 'steps', 'epoch'], default: 'no', doc: 'evaluate every eval_steps optimizer steps, at the end of each epoch, or never during training' },
  { path: 'eval_steps', kind: 'number', above: 0, default: null, nullable: true, doc: 'steps between evaluations (null: logging_steps; below 1: a fraction of the total steps)' },
  { path: 'per_device_eval_batch_size', kind: 'int', min: 1, default: 8, doc: 'sequences (or pairs) per data-parallel replica per evaluation batch' },
  { path: 'compute_accuracy', kind: 'bool', default: false, doc: 'sft/pt: also report eval_accuracy (argmax = label, per sequence, averaged)' },
  { path: 'eval_on_each_dataset', kind: 'bool', default: false, doc: 'evaluate each eval_dataset on its own (metrics eval_<name>_loss)' },
  // output
  { path: 'output_dir', kind: 'string', default: 'saves/run', doc: 'where metrics.jsonl, events.ndjson and checkpoints go' },
  { path: 'overwrite_output_dir', kind: 'bool', default: false, doc: 'clear a non-empty output_dir before the run (else it must be empty, or the run a resume)' },
  { path: 'plot_loss', kind: 'bool', default: false, doc: 'write training_loss.png (and eval loss, preference accuracy) into output_dir at the end' },
  { path: 'logging_steps', kind: 'int', min: 1, default: 10, doc: 'log every N optimizer steps' },
  { path: 'save_steps', kind: 'int', min: 1, default: 500, doc: 'checkpoint every N optimizer steps' },
  { path: 'save_total_limit', kind: 'int', min: 1, default: null, nullable: true, doc: 'keep at most N checkpoints (null: all)' },
  { path: 'resume_from_checkpoint', kind: 'resume', default: null, nullable: true, doc: 'checkpoint directory, or true for the latest in output_dir' },
  // optimization
  { path: 'per_device_train_batch_size', kind: 'int', min: 1, default: 1, doc: 'sequences per data-parallel replica per micro-step' },
  { path: 'gradient_accumulation_steps', kind: 'int', min: 1, default: 1, doc: 'micro-steps per optimizer step' },
  { path: 'learning_rate', kind: 'number', above: 0, default: 5e-5, doc: 'peak learning rate' },
  { path: 'num_train_epochs', kind: 'number', min: 0, default: 3.0, doc: 'epochs (used when max_steps is -1)' },
  { path: 'max_steps', kind: 'int', min: 1, sentinel: -1, default: -1, doc: 'optimizer steps; -1: derive from num_train_epochs' },
  { path: 'lr_scheduler_type', kind: 'enum', values: ['linear', 'cosine', 'constant', 'constant_with_warmup'], default: 'linear', doc: 'LR schedule after warmup' },
  { path: 'warmup_ratio', kind: 'number', min: 0, max: 1, default: 0, doc: 'warmup as a fraction of total steps' },
  { path: 'warmup_steps', kind: 'int', min: 0, default: 0, doc: 'warmup steps (overrides warmup_ratio when > 0)' },
  { path: 'max_grad_norm', kind: 'number', min: 0, default: 1.0, doc: 'clip the global gradient L2 norm (0: off)' },
  { path: 'weight_decay', kind: 'number', min: 0, default: 0, doc: 'AdamW decoupled weight decay' },
  { path: 'adam_beta1', kind: 'number', min: 0, max: 0.999999, default: 0.9, doc: 'AdamW beta1' },
  { path: 'adam_beta2', kind: 'number', min: 0, max: 0.999999, default: 0.999, doc: 'AdamW beta2' },
  { path: 'adam_epsilon', kind: 'number', above: 0, default: 1e-8, doc: 'AdamW epsilon' },
  { path: 'pref_beta', kind: 'number', above: 0, default: 0.1, doc: 'beta of the preference loss (dpo, kto)' },
  { path: 'pref_loss', kind: 'enum', values: ['sigmoid', 'orpo', 'simpo', 'ipo', 'hinge'], default: 'sigmoid', doc: 'dpo loss: sigmoid (DPO), ipo, hinge (against a reference model), orpo, simpo (reference-free, no reference model loaded)' },
  { path: 'pref_ftx', kind: 'number', min: 0, default: 0, doc: 'dpo, kto: weight of an SFT term (mean token NLL of the chosen / desirable responses) added to the preference loss' },
  { path: 'kto_chosen_weight', kind: 'number', above: 0, default: 1, doc: 'kto: weight of the desirable examples\' loss' },
  { path: 'kto_rejected_weight', kind: 'number', above: 0, default: 1, doc: 'kto: weight of the undesirable examples\' loss' },
  { path: 'simpo_gamma', kind: 'number', min: 0, default: 0.5, doc: 'pref_loss simpo: target reward margin gamma' },
  { path: 'dpo_label_smoothing', kind: 'number', min: 0, max: 0.5, default: 0, doc: 'pref_loss sigmoid: label smoothing epsilon of robust DPO (cDPO), 0..0.5' },
  { path: 'precompute_ref_log_probs', kind: 'bool', default: false, doc: 'dpo (sigmoid, ipo, hinge), kto: the reference (the initial model) scores every training and evaluation example once before training and no reference stays resident (full fine-tuning: no frozen copy); the scores are cached under output_dir/token_cache/reference_logps, keyed by the data, the weights and the layout, for later jobs and resumes (TRL\'s key)' },
  { path: 'seed', kind: 'int', min: 0, max: 2 ** 32 - 1, default: 42, doc: 'seed for data order, LoRA init and policy noise' },
  { path: 'bf16', kind: 'bool', default: false, doc: 'bf16 weights/activations with fp32 master weights' },
  { path: 'zero_stage', kind: 'int', min: 0, max: 3, default: 0, doc: 'ZeRO over the whole world (SP x DP): 0 replicated optimizer state, 1 AdamW moments partitioned across ranks (bitwise the weights of 0), 2 gradients too (reduce-scatter; the weights of 0 up to summation order), 3 parameters too (each layer gathered for its forward and backward; with LoRA the frozen base is sharded and the adapter gradients and moments partitioned as at 2); DeepSpeed JSON zero_optimization.stage sets it' },
  { path: 'tiled_mlp', kind: 'bool', default: false, doc: 'run each MLP over token tiles (ALST) so [tokens, intermediate_size] never exists whole; tile rows from the length; fp32 without MLP adapters' },
  // parallelism
  { path: 'sequence_parallel_size', kind: 'int', min: 1, default: 1, doc: 'ranks that split one sequence (Ulysses); must divide the world size' },
  { path: 'deepspeed', kind: 'string', default: null, nullable: true, doc: 'DeepSpeed JSON; its sequence_parallel_size and batch keys are honoured' },
  { path: 'device', kind: 'enum', values: ['cpu', 'cuda'], default: null, nullable: true, doc: 'compute backend; null: cuda when a GPU is visible and the addon can run its CUDA model, else cpu (LOCAL_RANK picks the GPU)' },
  { path: 'debug', kind: 'bool', default: false, doc: 'verbose logs and debug checks (--debug)' },
  // continuing from adapters, export (`ulysses-actors export`) and generation (`ulysses-actors chat`): LLaMA-Factory's keys
  { path: 'adapter_name_or_path', kind: 'list', default: null, nullable: true, doc: 'PEFT LoRA adapter directories, comma separated: training merges all but the last into the base and continues the last; export and chat merge them all' },
  { path: 'export_dir', kind: 'string', default: null, nullable: true, doc: 'export: where the merged HF model directory is written' },
  { path: 'export_size', kind: 'number', above: 0, default: 5, doc: 'export: largest weights shard in GB (10^9 bytes), as save_pretrained max_shard_size' },
  { path: 'export_device', kind: 'enum', values: ['cpu', 'auto'], default: 'cpu', doc: 'export: accepted for LLaMA-Factory configs; the merge always runs on this CPU' },
  { path: 'export_legacy_format', kind: 'bool', default: false, doc: 'export: true (PyTorch .bin files) is refused; weights are written as safetensors' },
  { path: 'export_quantization_bit', kind: 'int', min: 1, default: null, nullable: true, doc: 'export: a quantized export is refused (not implemented)' },
  { path: 'export_hub_model_id', kind: 'string', default: null, nullable: true, doc: 'export: pushing to a model hub is refused (no hub access)' },
  { path: 'infer_dtype', kind: 'enum', values: ['auto', 'float16', 'bfloat16', 'float32'], default: 'auto', doc: 'export: dtype of the written weights (auto: the base config torch_dtype, bfloat16 when that is float32 or absent)' },
  { path: 'do_sample', kind: 'bool', default: true, doc: 'chat: sample the next token (false: greedy decoding)' },
  { path: 'temperature', kind: 'number', min: 0, default: 0.95, doc: 'chat: softmax temperature (0: greedy)' },
  { path: 'top_p', kind: 'number', above: 0, max: 1, default: 0.7, doc: 'chat: keep the most probable tokens whose probabilities add up to top_p' },
  { path: 'top_k', kind: 'int', min: 0, default: 50, doc: 'chat: keep the top_k most probable tokens (0: all)' },
  { path: 'max_new_tokens', kind: 'int', min: 1, default: 1024, doc: 'chat: longest answer in tokens' },
  { path: 'repetition_penalty', kind: 'number', above: 0, default: 1.0, doc: 'chat: divides the positive (multiplies the negative) logits of tokens already in the conversation (1: off)' },
  // gradient policy (REFERENCE §5)
  { path: `${POLICY}.enabled`, kind: 'bool', default: P.enabled, doc: 'false: track phases but never intervene' },
  { path: `${POLICY}.vanishing.threshold`, kind: 'number', above: 0, default: P.vanishing.threshold, doc: 'enter vanishing-intervention below this grad_mean' },
  { path: `${POLICY}.vanishing.exit_threshold`, kind: 'number', above: 0, default: P.vanishing.exitThreshold, doc: 'hysteresis: leave once grad_mean >= this (>= threshold)' },
  { path: `${POLICY}.vanishing.noise_std`, kind: 'number', min: 0, default: P.vanishing.noiseStd, doc: 'gradient noise std while vanishing' },
  { path: `${POLICY}.vanishing.scale_threshold`, kind: 'number', min: 0, default: P.vanishing.scaleThreshold, doc: 'scale tensors whose mean |g| is below this' },
  { path: `${POLICY}.vanishing.scale_factor`, kind: 'number', above: 0, default: P.vanishing.scaleFactor, doc: 'scale applied to those tensors' },
  { path: `${POLICY}.vanishing.lr_boost`, kind: 'number', above: 0, default: P.vanishing.lrBoost, doc: 'LR multiplier while vanishing' },
  { path: `${POLICY}.late_stage.start_fraction`, kind: 'number', min: 0, max: 1, default: P.lateStage.startFraction, doc: 'late stage after this fraction of total steps' },
  { path: `${POLICY}.late_stage.vanishing_threshold`, kind: 'number', above: 0, default: P.lateStage.vanishingThreshold, doc: 'vanishing threshold in the late stage' },
  { path: `${POLICY}.late_stage.exit_threshold`, kind: 'number', above: 0, default: P.lateStage.exitThreshold, doc: 'late-stage hysteresis, as vanishing.exit_threshold' },
  { path: `${POLICY}.late_stage.noise_std`, kind: 'number', min: 0, default: P.lateStage.noiseStd, doc: 'gradient noise std in the late stage' },
  { path: `${POLICY}.late_stage.scale_threshold`, kind: 'number', min: 0, default: P.lateStage.scaleThreshold, doc: 'late-stage scale threshold' },
  { path: `${POLICY}.late_stage.scale_factor`, kind: 'number', above: 0, default: P.lateStage.scaleFactor, doc: 'late-stage scale factor' },
  { path: `${POLICY}.explode.threshold`, kind: 'number', above: 0, default: P.explode.threshold, doc: 'explode-clip while grad_mean exceeds this' },
  { path: `${POLICY}.explode.clip_norm`, kind: 'number', above: 0, default: P.explode.clipNorm, doc: 'global L2 norm clip while exploding' },
  { path: `${POLICY}.centralize`, kind: 'enum', values: ['linear', 'all', 'none'], default: P.centralize, doc: 'gradient centralization scope' },
  { path: `${POLICY}.nonfinite_patience`, kind: 'int', min: 1, default: P.nonfinitePatience, doc: 'non-finite steps in a row before escalating' },
  { path: `${POLICY}.loss_scale_schedule`, kind: 'string', default: null, nullable: true, doc: 'testing switch: "FROM-TO:FACTOR[,...]" multiplies the loss (so the gradients) by FACTOR on optimizer steps FROM..TO, e.g. "20-30:1e-6" to make gradients vanish' },
  // cluster
  { path: 'cluster.heartbeat_interval_s', kind: 'number', above: 0, default: 1, doc: 'application heartbeat period' },
  { path: 'cluster.heartbeat_miss_limit', kind: 'int', min: 1, default: 3, doc: 'a peer is dead after this many missed heartbeats' },
  { path: 'cluster.step_timeout_s', kind: 'number', above: 0, default: 600, doc: 'a rank whose step does not advance this long is hung' },
  { path: 'cluster.collective_timeout_s', kind: 'number', above: 0, default: 300, doc: 'timeout of one collective (Gloo)' },
  { path: 'cluster.rendezvous_timeout_s', kind: 'number', above: 0, default: 120, doc: 'all ranks must join within this' },
  { path: 'cluster.max_restarts', kind: 'int', min: 0, default: 3, doc: 'restarts allowed within restart_window_s before giving up' },
  { path: 'cluster.restart_window_s', kind: 'number', above: 0, default: 600, doc: 'sliding window for max_restarts' },
  { path: 'cluster.shutdown_grace_s', kind: 'number', min: 0, default: 10, doc: 'SIGTERM to SIGKILL grace period' },
  { path: 'cluster.startup_grace_s', kind: 'number', above: 0, default: 30, doc: 'a newly started rank may stay silent this long before missed heartbeats count' },
  { path: 'cluster.coordinator_grace_s', kind: 'number', above: 0, default: 30, doc: 'agents and ranks keep training through a silent coordinator (paused, cut off) this long, then stop (never less than heartbeat_interval_s x (heartbeat_miss_limit + 2)); the coordinator waits as long for a silent node agent' },
  { path: 'cluster.standby_ranks', kind: 'bool', default: true, doc: 'each node agent keeps a warm standby process per rank (started, code loaded, waiting) so a restarted group skips the process start-up; costs one idle process per rank' },
  { path: 'cluster.coordinator_port', kind: 'int', min: 0, max: 65535, default: 0, doc: 'coordinator ROUTER port (0: ephemeral)' },
  { path: 'cluster.bind_address', kind: 'string', default: '127.0.0.1', doc: 'address the coordinator binds (0.0.0.0 for multi-host)' },
  { path: 'cluster.advertise_address', kind: 'string', default: null, nullable: true, doc: 'address agents dial (null: bind_address, or this host name when binding 0.0.0.0)' },
  { path: 'cluster.launcher', kind: 'enum', values: ['local', 'ssh', 'external'], default: 'local', doc: 'how node agents start' },
  { path: 'cluster.agent_command', kind: 'string', default: 'ulysses-actors', doc: 'how another host runs this program (the ssh launcher runs it; the external launcher prints it)' },
  { path: 'cluster.ssh.port', kind: 'int', min: 1, max: 65535, default: null, nullable: true, doc: 'ssh port (null: the ssh client configuration)' },
  { path: 'cluster.ssh.user', kind: 'string', default: null, nullable: true, doc: 'remote user (null: user@host in the hostfile, or the ssh client configuration)' },
  { path: 'cluster.ssh.identity_file', kind: 'string', default: null, nullable: true, doc: 'private key for ssh -i (null: the ssh agent or client configuration)' },
  { path: 'cluster.ssh.strict_host_key_checking', kind: 'enum', values: ['yes', 'accept-new', 'no'], default: 'yes', doc: 'OpenSSH StrictHostKeyChecking (BatchMode is always on: nothing prompts)' },
  { path: 'cluster.ssh.connect_timeout_s', kind: 'int', min: 1, default: 10, doc: 'OpenSSH ConnectTimeout' },
  { path: 'cluster.ssh.options', kind: 'list', default: [], doc: 'extra OpenSSH -o options, e.g. UserKnownHostsFile=/path,LogLevel=ERROR' },
  { path: 'cluster.visualizer.enabled', kind: 'bool', default: true, doc: 'serve the statechart visualizer' },
  { path: 'cluster.visualizer.port', kind: 'int', min: 0, max: 65535, default: 0, doc: 'visualizer HTTP port (0: ephemeral)' },
  { path: 'cluster.visualizer.host', kind: 'string', default: '127.0.0.1', doc: 'visualizer bind address (loopback by default)' },
];

export const LEAF_BY_PATH: ReadonlyMap<string, LeafSpec> = new Map(LEAVES.map((l) => [l.path, l]));

/** Section names (non-leaf paths): `cluster`, `cluster.visualizer`, `gradient_policy`, ... */
export const SECTIONS: ReadonlySet<string> = new Set(
  LEAVES.flatMap((l) => {
    const parts = l.path.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);

const children = new Map<string, readonly string[]>();

/** Child names of a section ('' = top level): leaves and sub-sections (asked once per unknown key: kept). */
export function childrenOf(section: string): readonly string[] {
  const known = children.get(section);
  if (known) return known;
  const prefix = section ? section + '.' : '';
  const out = new Set<string>();
  for (const l of LEAVES) if (l.path.startsWith(prefix)) out.add(l.path.slice(prefix.length).split('.')[0]!);
  const list = [...out];
  // only real sections are kept, so hostile section names cannot grow the map
  if (section === '' || SECTIONS.has(section)) children.set(section, list);
  return list;
}

/** ULYSSES_<KEY>: upper case, dots of nested keys become underscores. */
export function envName(path: string): string {
  return 'ULYSSES_' + path.replace(/\./g, '_').toUpperCase();
}

export const LEAF_BY_ENV: ReadonlyMap<string, LeafSpec> = new Map(LEAVES.map((l) => [envName(l.path), l]));

/** Why a (coerced) value is invalid for its leaf, or undefined when it is fine. */
export function checkLeaf(l: LeafSpec, v: unknown): { message: string; fix: string } | undefined {
  if (v === null) return l.nullable ? undefined : { message: 'needs a value', fix: `remove the key to use the default ${JSON.stringify(l.default)}` };
  switch (l.kind) {
    case 'int':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) return { message: `must be a ${l.kind === 'int' ? 'whole number' : 'finite number'}`, fix: rangeText(l) };
      if (l.sentinel !== undefined && v === l.sentinel) return undefined;
      if (l.kind === 'int' && !Number.isInteger(v)) return { message: 'must be a whole number', fix: rangeText(l) };
      if ((l.min !== undefined && v < l.min) || (l.max !== undefined && v > l.max) || (l.above !== undefined && v <= l.above))
        return { message: 'is out of range', fix: rangeText(l) };
      return undefined;
    }
    case 'bool':
      return typeof v === 'boolean' ? undefined : { message: 'must be true or false', fix: 'write true or false' };
    case 'string':
      return typeof v === 'string' && v.length > 0 ? undefined : { message: 'must be a non-empty string', fix: `e.g. ${JSON.stringify(l.default ?? 'path/to/file')}` };
    case 'enum':
      return typeof v === 'string' && l.values!.includes(v) ? undefined : { message: 'is not one of the supported values', fix: `use one of ${l.values!.join(', ')}` };
    case 'list':
      return Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0)
        ? undefined
        : { message: 'must be a comma-separated list or a YAML list of names', fix: 'e.g. a,b or [a, b]' };
    case 'resume':
      return typeof v === 'boolean' || (typeof v === 'string' && v.length > 0) ? undefined : { message: 'must be a checkpoint path or true', fix: 'e.g. saves/run/checkpoint-100 or true' };
  }
}

function rangeText(l: LeafSpec): string {
  const parts: string[] = [];
  if (l.above !== undefined) parts.push(`> ${l.above}`);
  if (l.min !== undefined) parts.push(`>= ${l.min}`);
  if (l.max !== undefined) parts.push(`<= ${l.max}`);
  const range = parts.length ? `use a ${l.kind === 'int' ? 'whole number' : 'number'} ${parts.join(' and ')}` : `use a ${l.kind === 'int' ? 'whole number' : 'number'}`;
  return l.sentinel !== undefined ? `${range} (or ${l.sentinel})` : range;
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);
const NUMBER_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * Strict coercion of a value for a leaf: strings (environment, flags, or a quoted YAML value)
 * become numbers/booleans/lists only when they parse exactly; anything else is returned as is
 * and rejected by checkLeaf with a message naming the value.
 */
export function coerceLeaf(l: LeafSpec, v: unknown): unknown {
  if (typeof v === 'string') {
    const s = v.trim();
    if (l.nullable && (s === '' || s === 'null' || s === 'none' || s === 'None' || s === '~')) return null;
    switch (l.kind) {
      case 'int':
      case 'number':
        return NUMBER_RE.test(s) ? Number(s) : v;
      case 'bool':
        return TRUE.has(s.toLowerCase()) ? true : FALSE.has(s.toLowerCase()) ? false : v;
      case 'list':
        return s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
      case 'resume':
        return TRUE.has(s.toLowerCase()) ? true : FALSE.has(s.toLowerCase()) ? null : s;
      default:
        return s;
    }
  }
  if (l.kind === 'list' && Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x.trim() : x));
  if (l.kind === 'resume' && v === false) return null;
  return v;
}
