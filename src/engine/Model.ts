/**
 * The Llama-family model of the native engine, typed: construction from an HF config, seeded
 * initialization, forward / backward over one packed token sequence, HF checkpoint load / save.
 * Parameters and gradients are Float32Arrays over the native flat buffers (no copies), with an
 * HF-named view table. Optional LoRA adapters (attachLora) live in their own flat buffers with
 * PEFT-named views and freeze the base model; `trainable` is what an optimizer updates either way.
 * Every call that computes runs off the main thread and returns a Promise;
 * arguments are validated here (coded EngineErrors) and again natively. Must never hold a second
 * copy of the parameters or block the event loop on model math.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { native } from './native.js';
import { EngineError } from './errors.js';
import { expectData, type Tensor } from './Tensor.js';
import { readModelConfig, toHfConfig, type ModelConfig } from './modelConfig.js';
import type { Communicator } from './Communicator.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorsHeader } from './safetensors.js';
import { readAdapterConfig, readAdapterWeights, resolveLora, targetMask, writeAdapter, type LoraOptions, type ResolvedLora } from './lora.js';

export interface ParamView {
  name: string;
  /** Element offset in the flat buffer (a multiple of 16: every view is 64-byte aligned). */
  offset: number;
  shape: number[];
  numel: number;
}

export interface ModelOptions {
  /** Seed of the deterministic initialization (default 0). */
  seed?: number;
  /** Per-layer activation checkpointing (default off). */
  checkpointing?: boolean;
}

export interface ForwardInput {
  /** Token ids [n]. */
  tokens: Int32Array | Tensor;
  /** Targets [n], already shifted (labels[t] is the target of position t); -100 is ignored. */
  labels: Int32Array | Tensor;
  /** Global position ids [n] (default 0..n-1). */
  positions?: Int32Array | Tensor;
  /** Document lengths summing to n (default: one document); a negative length marks padding. */
  docLens?: Int32Array;
  /** Valid tokens in the whole global batch (default: the valid labels of this sequence). */
  normalizer?: number;
  /** Receives -log p(label) per token [n] (0 where ignored). */
  tokenLoss?: Float32Array;
  /** Receives each position's highest-logit token id [n] (ties: the lowest id); for accuracy metrics. */
  tokenArgmax?: Int32Array;
  /**
   * Key of the LoRA dropout masks (uint32): masks are keyed by (LoRA seed, this key, layer,
   * module), so the caller picks one per micro-batch (e.g. from the step and micro-batch index)
   * and a resumed run draws the same masks. Absent: no dropout (evaluation, reference passes).
   */
  dropoutKey?: number;
}

/** The tensors an optimizer updates: the whole model, or only the adapters once LoRA is attached. */
export interface TrainableSet {
  params: Float32Array;
  grads: Float32Array;
  views: readonly ParamView[];
}

/** The attached adapters: their settings and flat buffers (PEFT names in `views`). */
export interface LoraState extends ResolvedLora, TrainableSet {}

export interface ForwardResult {
  /** Sum of this sequence's token losses divided by the normalizer. */
  loss: number;
  /** Tokens of this sequence with a label. */
  valid: number;
}

interface NativeModel {
  views(): ParamView[];
  params(): Float32Array;
  grads(): Float32Array;
  numParams(): number;
  init(seed: number): Promise<void>;
  zeroGrad(): Promise<void>;
  setCheckpointing(on: boolean): void;
  forward(t: Int32Array, l: Int32Array, p: Int32Array, d: Int32Array | null, norm: number, tl: Float32Array | null, dropoutKey: number | null, argmax: Int32Array | null): Promise<ForwardResult>;
  backward(w: Float32Array | null): Promise<void>;
  hasForward(): boolean;
  activationBytes(): number;
  setProfiling(on: boolean): void;
  profile(): Record<string, number>;
  setSequenceParallel(commHandle: unknown): void;
  clearSequenceParallel(): void;
  sequenceParallelStats(reset: boolean): SequenceParallelStats | null;
  attachLora(c: { rank: number; alpha: number; dropout: number; targets: number; seed: number }): void;
  initLora(seed: number): Promise<void>;
  loraViews(): ParamView[];
  loraParams(): Float32Array | null;
  loraGrads(): Float32Array | null;
  setAdaptersEnabled(on: boolean): void;
  adaptersEnabled(): boolean;
}

/** Counters of the Ulysses attention backend (since it was installed or last reset). */
export interface SequenceParallelStats {
  /** Sequence-parallel degree P. */
  degree: number;
  /** Wall time inside the attention all-to-alls. */
  commSeconds: number;
  allToAlls: number;
  /** Bytes this rank sent through them. */
  bytes: number;
  /** Backwards that reused the forward's head-sharded tensors (no re-communication). */
  cacheHits: number;
  /** Bytes of the backend's head-sharded buffers. */
  bufferBytes: number;
}

export class Model {
  readonly config: ModelConfig;
  /** Flat parameter buffer (native memory). */
  readonly params: Float32Array;
  /** Flat gradient buffer, same views as params. */
  readonly grads: Float32Array;
  readonly views: readonly ParamView[];
  private handle: NativeModel | undefined;
  private readonly byName: Map<string, ParamView>;
  private lastN = 0;
  private loraState: LoraState | null = null;
  /** Where the base model came from (adapter_config.json's base_model_name_or_path); null: created here. */
  nameOrPath: string | null = null;

  private constructor(config: ModelConfig, handle: NativeModel) {
    this.config = config;
    this.handle = handle;
    this.params = handle.params();
    this.grads = handle.grads();
    this.views = handle.views();
    this.byName = new Map(this.views.map((v) => [v.name, v]));
  }

  /** A model with seeded random weights (normal(0, initializer_range); norms 1; biases 0). */
  static async create(config: ModelConfig, o: ModelOptions = {}): Promise<Model> {
    const m = Model.allocate(config, o);
    await m.init(o.seed ?? 0);
    return m;
  }

  /** Loads `dir/config.json` and `dir/model.safetensors` (or a sharded index) into a new model. */
  static async fromPretrained(dir: string, o: ModelOptions = {}): Promise<Model> {
    const config = await readModelConfig(join(dir, 'config.json'));
    const m = Model.allocate(config, o);
    await m.loadWeights(dir);
    m.nameOrPath = dir;
    return m;
  }

  private static allocate(config: ModelConfig, o: ModelOptions): Model {
    const Ctor = native().Model as new (c: ModelConfig) => NativeModel;
    const m = new Model(config, new Ctor(config));
    if (o.checkpointing) m.setCheckpointing(true);
    return m;
  }

  private get h(): NativeModel {
    if (!this.handle) throw new EngineError('ERR_STATE', 'model is closed');
    return this.handle;
  }

  /** Trainable parameters (alignment padding excluded). */
  get numParams(): number {
    return this.h.numParams();
  }

  /** Bytes of the activation buffers (allocated once per sequence length). */
  get activationBytes(): number {
    return this.h.activationBytes();
  }

  /** The parameter tensor `name` (a view into the flat buffer). */
  param(name: string): Float32Array {
    const v = this.view(name);
    return this.params.subarray(v.offset, v.offset + v.numel);
  }

  /** The gradient of tensor `name` (a view into the flat gradient buffer). */
  grad(name: string): Float32Array {
    const v = this.view(name);
    return this.grads.subarray(v.offset, v.offset + v.numel);
  }

  view(name: string): ParamView {
    const v = this.byName.get(name);
    if (!v) throw new EngineError('ERR_ARG', `no parameter named ${name}`);
    return v;
  }

  async init(seed: number): Promise<void> {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new EngineError('ERR_ARG', `seed must be a non-negative integer, got ${seed}`);
    await this.h.init(seed);
  }

  setCheckpointing(on: boolean): void {
    this.h.setCheckpointing(on);
  }

  /** Per-category wall-clock timing of the native passes (for benchmarks); resets the counters. */
  setProfiling(on: boolean): void {
    this.h.setProfiling(on);
  }

  /** Seconds per category (gemm, attention_forward, ...) accumulated since setProfiling(true). */
  profile(): Record<string, number> {
    return this.h.profile();
  }

  /**
   * Ulysses attention over `spGroup` (REFERENCE §2): from now on forward takes this rank's n = s/P
   * tokens with GLOBAL positions and GLOBAL docLens (summing to P*n). Every rank of the group must
   * call forward/backward in the same order with the same configuration (checkpointing included),
   * and nothing else may use `spGroup` while a model call is running. ERR_CONFIG when the head
   * counts do not split over P.
   */
  setSequenceParallel(spGroup: Communicator): void {
    this.h.setSequenceParallel(spGroup.nativeHandle);
  }

  /** Back to local attention over the whole sequence this process holds. */
  clearSequenceParallel(): void {
    this.h.clearSequenceParallel();
  }

  /** Communication counters of the Ulysses attention (null when not sequence-parallel). */
  sequenceParallelStats(reset = false): SequenceParallelStats | null {
    return this.h.sequenceParallelStats(reset);
  }

  /**
   * Attaches LoRA adapters to the chosen linear modules of every layer (A from PEFT's
   * kaiming-uniform, B = 0, so the model's output is unchanged) and freezes the base model: from
   * now on backward accumulates adapter gradients only and `trainable` is the adapter set.
   * ERR_CONFIG on bad options, ERR_STATE when adapters are already attached or a forward awaits
   * its backward.
   */
  async attachLora(o: LoraOptions): Promise<LoraState> {
    const l = resolveLora(o);
    if (this.loraState) throw new EngineError('ERR_STATE', 'attachLora: adapters are already attached');
    this.h.attachLora({ rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: targetMask(l.targets), seed: l.seed });
    this.loraState = { ...l, params: this.h.loraParams()!, grads: this.h.loraGrads()!, views: this.h.loraViews() };
    await this.h.initLora(l.seed);
    return this.loraState;
  }

  /** The attached adapters (null without LoRA). */
  get lora(): LoraState | null {
    return this.loraState;
  }

  /** What the optimizer updates: the adapters with LoRA, else every parameter. */
  get trainable(): TrainableSet {
    return this.loraState ?? { params: this.params, grads: this.grads, views: this.views };
  }

  /** Off: forward computes the base model (DPO's reference pass); ERR_STATE without adapters. */
  setAdaptersEnabled(on: boolean): void {
    if (!this.loraState) throw new EngineError('ERR_STATE', 'setAdaptersEnabled: no adapters attached');
    this.h.setAdaptersEnabled(on);
  }

  get adaptersEnabled(): boolean {
    return this.loraState !== null && this.h.adaptersEnabled();
  }

  /**
   * Writes the adapters in PEFT's layout: `dir/adapter_model.safetensors` (PEFT tensor names, F32)
   * and `dir/adapter_config.json` (base_model_name_or_path as given, default `nameOrPath`).
   */
  async saveAdapter(dir: string, o: { baseModelNameOrPath?: string | null } = {}): Promise<void> {
    const l = this.loraState;
    if (!l) throw new EngineError('ERR_STATE', 'saveAdapter: no adapters attached');
    await writeAdapter(dir, l, l.views, l.params, o.baseModelNameOrPath ?? this.nameOrPath);
  }

  /**
   * Loads PEFT adapters from `dir`. Without adapters attached it attaches them with the file's
   * rank, alpha, dropout and targets (seed `o.seed`, default 0: the dropout stream); with adapters
   * attached those must match (ERR_CONFIG). Tensor names and shapes are checked (ERR_SAFETENSORS).
   */
  async loadAdapter(dir: string, o: { seed?: number } = {}): Promise<LoraState> {
    const cfg = await readAdapterConfig(dir);
    let l = this.loraState;
    if (!l) {
      l = await this.attachLora({ ...cfg, seed: o.seed ?? 0 });
    } else {
      const diff: string[] = [];
      if (cfg.rank !== l.rank) diff.push(`r ${cfg.rank} vs ${l.rank}`);
      if (cfg.alpha !== l.alpha) diff.push(`lora_alpha ${cfg.alpha} vs ${l.alpha}`);
      if (cfg.targets.join(',') !== l.targets.join(',')) diff.push(`target_modules [${cfg.targets.join(', ')}] vs [${l.targets.join(', ')}]`);
      if (diff.length) throw new EngineError('ERR_CONFIG', `loadAdapter: ${dir} does not match the attached adapters (${diff.join('; ')})`);
    }
    await readAdapterWeights(dir, l.views, l.params);
    return l;
  }

  /** Zeroes the trainable gradients (with LoRA the adapters' only: base gradients are never written). */
  async zeroGrad(): Promise<void> {
    await this.h.zeroGrad();
  }

  /** Forward over one packed sequence; keeps what the backward needs. */
  async forward(input: ForwardInput): Promise<ForwardResult> {
    const n = input.tokens instanceof Int32Array ? input.tokens.length : input.tokens.numel;
    if (n < 1) throw new EngineError('ERR_SHAPE', 'forward: tokens must hold at least one token');
    const tokens = expectData<Int32Array>('forward tokens', input.tokens, 'i32', [n]);
    const labels = expectData<Int32Array>('forward labels', input.labels, 'i32', [n]);
    const positions = input.positions
      ? expectData<Int32Array>('forward positions', input.positions, 'i32', [n])
      : Int32Array.from({ length: n }, (_, i) => i);
    let docLens: Int32Array | null = null;
    if (input.docLens) {
      // The sum is checked natively: it depends on the attention backend (n locally; the global
      // length under sequence parallelism).
      docLens = expectData<Int32Array>('forward docLens', input.docLens, 'i32', [input.docLens.length]);
    }
    let normalizer = input.normalizer;
    if (normalizer === undefined) {
      normalizer = labels.reduce((a, x) => a + (x >= 0 ? 1 : 0), 0);
      if (normalizer === 0) throw new EngineError('ERR_ARG', 'forward: no valid label and no normalizer given');
    }
    if (!Number.isFinite(normalizer) || normalizer <= 0) throw new EngineError('ERR_ARG', `forward: normalizer must be a finite number > 0, got ${normalizer}`);
    const tokenLoss = input.tokenLoss ? expectData<Float32Array>('forward tokenLoss', input.tokenLoss, 'f32', [n]) : null;
    const key = input.dropoutKey ?? null;
    if (key !== null && (!Number.isInteger(key) || key < 0 || key > 0xffffffff)) throw new EngineError('ERR_ARG', `forward: dropoutKey must be an integer in [0, 2^32), got ${key}`);
    const argmax = input.tokenArgmax ? expectData<Int32Array>('forward tokenArgmax', input.tokenArgmax, 'i32', [n]) : null;
    const r = await this.h.forward(tokens, labels, positions, docLens, normalizer, tokenLoss, key, argmax);
    this.lastN = n;
    return r;
  }

  /**
   * Accumulates gradients of L = sum_t w_t * token_loss_t into `grads` (w_t = 1/normalizer, or
   * `tokenWeight[t]`). Needs a forward since the last backward (ERR_STATE otherwise).
   */
  async backward(tokenWeight?: Float32Array): Promise<void> {
    const w = tokenWeight ? expectData<Float32Array>('backward tokenWeight', tokenWeight, 'f32', [this.lastN]) : null;
    await this.h.backward(w);
  }

  async forwardBackward(input: ForwardInput, tokenWeight?: Float32Array): Promise<ForwardResult> {
    const r = await this.forward(input);
    await this.backward(tokenWeight);
    return r;
  }

  /** Writes `dir/config.json` and `dir/model.safetensors` (F32, HF names). */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const tensors = this.views.map((v) => ({ name: v.name, shape: v.shape, data: this.param(v.name) }));
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const tmp = join(dir, `config.json.tmp-${process.pid}`);
    await writeFile(tmp, JSON.stringify(toHfConfig(this.config), null, 2) + '\n');
    await rename(tmp, join(dir, 'config.json'));
  }

  /** Fills the parameters from a checkpoint directory (model.safetensors or a sharded index). */
  async loadWeights(dir: string): Promise<void> {
    const files = await weightFiles(dir);
    const headers = new Map<string, SafetensorsHeader>();
    for (const v of this.views) {
      const file = files.get(v.name);
      if (!file) throw new EngineError('ERR_SAFETENSORS', `${dir}: missing tensor ${v.name}`);
      let header = headers.get(file);
      if (!header) {
        header = await readSafetensorsHeader(file);
        headers.set(file, header);
      }
      const e = header.tensors.get(v.name);
      if (!e) throw new EngineError('ERR_SAFETENSORS', `${file}: missing tensor ${v.name}`);
      if (e.shape.length !== v.shape.length || e.shape.some((d, i) => d !== v.shape[i])) {
        throw new EngineError('ERR_SAFETENSORS', `${file}: tensor ${v.name} has shape [${e.shape.join(', ')}], the config needs [${v.shape.join(', ')}]`);
      }
      await readTensorF32(header, v.name, this.param(v.name));
    }
  }

  /** Drops the native handle; the buffers stay valid until garbage-collected. Safe to call twice. */
  close(): void {
    this.handle = undefined;
  }
}

/** Tensor name -> file, from model.safetensors.index.json when present, else model.safetensors. */
async function weightFiles(dir: string): Promise<Map<string, string>> {
  const index = join(dir, 'model.safetensors.index.json');
  const map = new Map<string, string>();
  if (existsSync(index)) {
    let json: { weight_map?: Record<string, string> };
    try {
      json = JSON.parse(await readFile(index, 'utf8'));
    } catch (e) {
      throw new EngineError('ERR_SAFETENSORS', `${index}: invalid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!json.weight_map || typeof json.weight_map !== 'object') throw new EngineError('ERR_SAFETENSORS', `${index}: missing weight_map`);
    for (const [name, file] of Object.entries(json.weight_map)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
        throw new EngineError('ERR_SAFETENSORS', `${index}: tensor ${name}: bad shard file name ${JSON.stringify(file)}`);
      }
      map.set(name, join(dir, file));
    }
    return map;
  }
  const file = join(dir, 'model.safetensors');
  const header = await readSafetensorsHeader(file);
  for (const name of header.tensors.keys()) map.set(name, file);
  return map;
}
