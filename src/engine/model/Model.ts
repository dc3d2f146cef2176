/**
 * The Llama-family model of the native engine, typed: construction from an HF config, seeded
 * initialization, forward / backward over one packed token sequence, HF checkpoint load / save.
 * Parameters and gradients are Float32Arrays over the native flat buffers (no copies), with an
 * HF-named view table. Optional LoRA adapters (attachLora) live in their own flat buffers with
 * PEFT-named views and freeze the base model; `trainable` is what an optimizer updates either way.
 * Every call that computes runs off the main thread and returns a Promise; arguments are
 * validated here (coded EngineErrors) and again natively. With `bf16` (REFERENCE §6) the
 * parameters stay fp32 masters and the native side computes with a bf16 copy of the weights,
 * refreshed at the next forward after `weightsChanged()` (called here by every load and by the
 * optimizer through `trainable.updated`). Must never hold a second JS copy of the parameters or
 * block the event loop on model math.
 */
import { join } from 'node:path';
import type { Communicator } from '../Communicator.js';
import { deviceFacts } from '../device/deviceFacts.js';
import { selectDevice, type DeviceKind } from '../device/selectDevice.js';
import { EngineError } from '../errors.js';
import { resolveLora, writeAdapter, type LoraOptions } from '../lora.js';
import { readModelConfig, type ModelConfig } from '../modelConfig.js';
import { native } from '../native.js';
import type { ForwardResult, NativeModel, ParamView, SequenceParallelStats, ShardStats } from '../nativeBinding.js';
import { expectData } from '../Tensor.js';
import { attachAdapters, loadAdapters, type LoraState } from './adapters.js';
import { forwardArgs, type ForwardInput } from './forwardInput.js';
import { loadHfWeights, saveHfModel } from './hfWeights.js';
import type { TrainableSet } from './TrainableSet.js';

export interface ModelOptions {
  /** Seed of the deterministic initialization (default 0). */
  seed?: number;
  /** Per-layer activation checkpointing (default off). */
  checkpointing?: boolean;
  /** Mixed precision: bf16 weight copy, products and saved activations, fp32 masters (default off). */
  bf16?: boolean;
  /** Tiled MLP (ALST): true picks the tile from the length, a number is rows per tile (default off). */
  tiledMlp?: boolean | number;
  /** Compute backend (default cpu; null: chosen by device/selectDevice.ts from the addon and LOCAL_RANK). */
  device?: DeviceKind | null;
}

/** ZeRO stage 3's part of the parameters and gradients on this rank (packed as zero/partition.ts packs them). */
export interface ParameterShards {
  params: Float32Array;
  grads: Float32Array;
}

/** Where this rank stands in stage 3's sharding: world rank and size, replicas, the SP block, each tensor's chunk. */
export interface ShardLayout {
  rank: number;
  world: number;
  dp: number;
  block: number;
  chunks: readonly number[];
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
  private shardState: ParameterShards | null = null;
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
    // the device seam's selection point: cpu (the default) never asks the addon about CUDA;
    // selectDevice refuses cuda with ERR_DEVICE wherever the addon binds no CUDA model
    if (o.device !== undefined && o.device !== 'cpu' && selectDevice(o.device, deviceFacts()).kind !== 'cpu')
      throw new EngineError('ERR_DEVICE', 'device: cuda: this addon binds no CUDA model; use device: cpu');
    const m = new Model(config, new (native().Model)(config));
    if (o.checkpointing) m.setCheckpointing(true);
    if (o.bf16) m.setBf16(true);
    if (o.tiledMlp) m.setMlpTiling(o.tiledMlp);
    return m;
  }

  private get h(): NativeModel {
    if (!this.handle) throw new EngineError('ERR_STATE', 'model is closed');
    return this.handle;
  }

  /** The native model, for the engine's own wrappers over it (generate/InferSession.ts). */
  get nativeModel(): NativeModel {
    return this.h;
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

  /**
   * Tiled MLP (kernels/mlp_tiled.h): the MLP runs over token tiles so [n, intermediate] never
   * exists whole. true: tile rows from the length; a number: rows per tile; false: untiled. fp32
   * models without adapters on the MLP only (others run untiled). Takes effect at the next forward.
   */
  setMlpTiling(tile: boolean | number): void {
    if (typeof tile === 'number' && (!Number.isSafeInteger(tile) || tile < 1))
      throw new EngineError('ERR_ARG', `MLP tile rows must be a positive integer, got ${tile}`);
    this.h.setMlpTiling(tile === true ? -1 : tile === false ? 0 : tile);
  }

  /** Rows per MLP tile of the last forward's buffers (0: untiled). */
  get mlpTile(): number {
    return this.h.mlpTile();
  }

  /**
   * Mixed precision on or off (REFERENCE §6). Frees the activation buffers; a forward awaiting its
   * backward is dropped (ERR_STATE while a call runs).
   */
  setBf16(on: boolean): void {
    this.h.setBf16(on);
  }

  get bf16(): boolean {
    return this.h.bf16();
  }

  /**
   * Call after writing `params` in place: a bf16 model refreshes its bf16 weights from them at the
   * next forward (a no-op in fp32). Loads and the optimizer (trainable.updated) call it.
   */
  weightsChanged(): void {
    this.h.weightsChanged();
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
    this.loraState = await attachAdapters(this.h, l);
    return this.loraState;
  }

  /** The attached adapters (null without LoRA). */
  get lora(): LoraState | null {
    return this.loraState;
  }

  /** What the optimizer updates: the adapters with LoRA, else every parameter. */
  get trainable(): TrainableSet {
    return this.loraState ?? { params: this.params, grads: this.grads, views: this.views, updated: () => this.weightsChanged() };
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
    this.loraState = await loadAdapters(this.h, this.loraState, dir, o.seed ?? 0);
    return this.loraState;
  }

  /**
   * ZeRO stage 3 (REFERENCE §8): from now on this rank keeps only its part of every parameter and
   * gradient (`layout.chunks`: the partition map's), taken from the current parameters; forward
   * and backward gather each layer over `world` (null: a world of one) and reduce-scatter its
   * gradient into the part (the world SUM: the trainer's Optimizer.reduceGradients divides it by
   * the replicas once per step), so `params` and `grads` read as zero except while gatherParameters()
   * holds the parameters. With `gatherWorld` (a second communicator over the same world, used by
   * nothing else) the gathers run on a worker thread of their own, each run's gather overlapping
   * the compute before it. Every rank calls it at the same point. With LoRA adapters (attached
   * first) only the frozen base is sharded: nothing of it is reduced, and the adapters stay whole
   * in `trainable` (the trainer partitions their gradients and moments as under stage 2).
   * ERR_STATE with a pending forward.
   */
  shardParameters(world: Communicator | null, layout: ShardLayout, gatherWorld: Communicator | null = null): ParameterShards {
    this.h.shardParameters(world ? world.nativeHandle : null, layout.rank, layout.world, layout.dp, layout.block, [...layout.chunks], gatherWorld ? gatherWorld.nativeHandle : null);
    this.shardState = { params: this.h.shardedParams()!, grads: this.h.shardedGrads()! };
    return this.shardState;
  }

  /** Stage 3's parts (null: the parameters are whole). */
  get shards(): ParameterShards | null {
    return this.shardState;
  }

  /** Stage 3: every parameter into `params` from the parts (a collective), for checkpoints and hashes; releaseParameters() after. */
  async gatherParameters(): Promise<void> {
    await this.h.gatherParameters();
  }

  releaseParameters(): void {
    this.h.releaseParameters();
  }

  /** Stage 3: this rank's part from `params` (after a load into them), which are then released. */
  async takeParameterPart(): Promise<void> {
    await this.h.takeParameterPart();
  }

  shardStats(): ShardStats | null {
    return this.h.shardStats();
  }

  /** Zeroes the trainable gradients (with LoRA the adapters' only: base gradients are never written). */
  async zeroGrad(): Promise<void> {
    await this.h.zeroGrad();
  }

  /** Forward over one packed sequence; keeps what the backward needs. */
  async forward(input: ForwardInput): Promise<ForwardResult> {
    const { n, args } = forwardArgs(input);
    const r = await this.h.forward(...args);
    this.lastN = n;
    return r;
  }

  /**
   * Accumulates gradients of L = sum_t w_t * token_loss_t into `grads` (w_t = 1/normalizer, or
   * `tokenWeight[t]`), plus <dHidden, final norm output> when dHidden ([n, hidden]) is given.
   * Needs a forward since the last backward (ERR_STATE otherwise).
   */
  async backward(tokenWeight?: Float32Array, dHidden?: Float32Array): Promise<void> {
    const w = tokenWeight ? expectData<Float32Array>('backward tokenWeight', tokenWeight, 'f32', [this.lastN]) : null;
    await this.h.backward(w, dHidden ?? null);
  }

  /**
   * The final norm output (what the LM head reads) of token `row` of the last forward, [hidden]
   * floats; heads on the hidden states send their gradient back through backward's `dHidden`.
   */
  finalHidden(row: number): Float32Array {
    const out = new Float32Array(this.config.hiddenSize);
    this.h.finalHidden(row, out);
    return out;
  }

  async forwardBackward(input: ForwardInput, tokenWeight?: Float32Array): Promise<ForwardResult> {
    const r = await this.forward(input);
    await this.backward(tokenWeight);
    return r;
  }

  /** Writes `dir/config.json` and `dir/model.safetensors` (F32, HF names). */
  async save(dir: string): Promise<void> {
    await saveHfModel(dir, this.config, this.views, this.params);
  }

  /** Fills the parameters from a checkpoint directory (model.safetensors or a sharded index). */
  async loadWeights(dir: string): Promise<void> {
    try {
      await loadHfWeights(dir, this.views, this.params);
    } finally {
      this.weightsChanged();  // also after a partial load: never compute with a stale copy
    }
  }

  /** Drops the native handle; the buffers stay valid until garbage-collected. Safe to call twice. */
  close(): void {
    this.handle = undefined;
  }
}
