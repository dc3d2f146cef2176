/**
 * The native addon's surface, declared once and typed (as zeromq.js declares its native classes):
 * every function and class that native/src/bind_*.cc exports, with the argument order the
 * bindings read. The wrappers (ops/*.ts, Communicator.ts, model/, safetensors.ts, threads.ts,
 * nativeCalls.ts) are its only users; they validate arguments first and turn results into the
 * engine's public types. Declarations only: this file must never hold behaviour, and a binding
 * added natively must be declared here before any wrapper may call it.
 *
 * Conventions of the raw functions: sizes are plain numbers (integers), optional buffers are
 * `null`, every call that does work returns a Promise settled from a libuv worker thread, and
 * every failure (sync throw or rejection) is an Error with a `code` (README "Errors").
 */
import type { ModelConfig } from './modelConfig.js';

type F32 = Float32Array;
type F64 = Float64Array;
type I32 = Int32Array;

/** Any typed array (collectives move raw bytes). */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | BigInt64Array;

/** A tensor of the model's flat buffers: `numel` elements from `offset`, HF (or PEFT) name. */
export interface ParamView {
  name: string;
  /** Element offset in the flat buffer (a multiple of 16: every view is 64-byte aligned). */
  offset: number;
  shape: number[];
  numel: number;
}

export interface ForwardResult {
  /** Sum of this sequence's token losses divided by the normalizer. */
  loss: number;
  /** Tokens of this sequence with a label. */
  valid: number;
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

export interface GradStats {
  /** Mean over tensors of mean(|g|) (each non-empty tensor counts once; REFERENCE §5). */
  gradMean: number;
  /** Global L2 norm over the finite values. */
  l2Norm: number;
  /** Max |g| over the finite values. */
  maxAbs: number;
  /** Number of NaN/Inf values. */
  nonfinite: number;
  /** mean(|g|) of each tensor (finite values summed, divided by numel). */
  perTensorMeanAbs: Float64Array;
}

/** What applying a gradient-policy plan did (optimizerStep's result). */
export interface PlanEffects {
  /** tensors that received noise */
  noised: number;
  /** tensors scaled up */
  scaled: number;
  centralized: number;
  /** the factor the clip applied (1: none) */
  clipFactor: number;
  /** global L2 norm after the changes, before the clip (the reduced norm when nothing was clipped or changed) */
  normBeforeClip: number;
}

/** optimizerStep's plan argument: a policy plan's numbers (REFERENCE §5) plus the reduced norm it was made from. */
export interface NativeGradPlan {
  /** 0: no noise; else std of the noise added to every span, keyed by (noiseSeed, noiseStep, span's noise tensor) */
  noiseStd: number;
  noiseSeed: number;
  /** optimizer step keying the noise (< 2^32) */
  noiseStep: number;
  /** spans whose reduced mean |g| < scaleThreshold are multiplied by scaleFactor (1 or threshold 0: none) */
  scaleFactor: number;
  scaleThreshold: number;
  /** clip the global L2 norm to this (0: no clipping) */
  clipNorm: number;
  /** the reduced global L2 norm of the gradients the plan was made from */
  l2Norm: number;
}

/** optimizerStep's AdamW argument (weightDecay applies to the spans flagged for decay). */
export interface NativeAdamW {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number after this update (bias correction) */
  step: number;
}

/** Columns of optimizerStep's span table (a Float64Array, one row per span) and its flag bits. */
export const SPAN_COLUMNS = 6;
export const SPAN_CENTRALIZE = 1;
export const SPAN_DECAY = 2;

/** attachLora's argument: `targets` is the bit mask of LORA_MODULES. */
export interface NativeLoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: number;
  seed: number;
}

/** The communicator behind a handle (an N-API External): opaque here. */
export interface CommHandle {
  readonly __commHandle: unique symbol;
}

export interface CommInfo {
  rank: number;
  size: number;
  timeoutMs: number;
  failed: boolean;
  sharedMemory: boolean;
}

/** A JS rendezvous store as the native bridge calls it (from Gloo's connecting thread, via a threadsafe function). */
export type StoreRequest = (op: 'set' | 'get' | 'wait', key: string | string[], value?: Uint8Array) => Promise<Uint8Array | undefined>;

/** The trailing (docLens, s, H, Hkv, d, causal, scale) arguments of the attention bindings (scale 0: 1/sqrt(d)). */
export type AttentionShapeArgs = [docLens: I32 | null, s: number, H: number, Hkv: number, d: number, causal: boolean, scale: number, window: number];

/** An instance of the native `Model` class (bind_model*.cc). */
export interface NativeModel {
  views(): ParamView[];
  params(): F32;
  grads(): F32;
  numParams(): number;
  init(seed: number): Promise<void>;
  zeroGrad(): Promise<void>;
  setCheckpointing(on: boolean): void;
  /** Tiled MLP: 0 off, -1 tile rows from the length, > 0 rows per tile (next forward). */
  setMlpTiling(rows: number): void;
  /** Rows per MLP tile of the last forward (0: untiled). */
  mlpTile(): number;
  /** Mixed precision (REFERENCE §6): fp32 masters, bf16 weight copy and products. */
  setBf16(on: boolean): void;
  bf16(): boolean;
  /** The fp32 parameters changed: the bf16 copy is refreshed at the next forward. */
  weightsChanged(): void;
  forward(tokens: I32, labels: I32, positions: I32, docLens: I32 | null, normalizer: number, tokenLoss: F32 | null, dropoutKey: number | null, tokenArgmax: I32 | null): Promise<ForwardResult>;
  /** dHidden [n, hidden]: added to the gradient of the final norm output (heads on the hidden states). */
  backward(tokenWeight: F32 | null, dHidden: F32 | null): Promise<void>;
  hasForward(): boolean;
  /** The final norm output of token `row` of the last forward into out [hidden]. */
  finalHidden(row: number, out: F32): void;
  activationBytes(): number;
  setProfiling(on: boolean): void;
  profile(): Record<string, number>;
  setSequenceParallel(comm: CommHandle): void;
  clearSequenceParallel(): void;
  sequenceParallelStats(reset: boolean): SequenceParallelStats | null;
  attachLora(c: NativeLoraConfig): void;
  initLora(seed: number): Promise<void>;
  loraViews(): ParamView[];
  loraParams(): F32 | null;
  loraGrads(): F32 | null;
  loraNumParams(): number;
  setAdaptersEnabled(on: boolean): void;
  adaptersEnabled(): boolean;
  shardParameters(comm: CommHandle | null, rank: number, world: number, dp: number, block: number, chunks: number[], gatherComm: CommHandle | null): void;
  shardedParams(): F32 | null;
  shardedGrads(): F32 | null;
  gatherParameters(): Promise<void>;
  releaseParameters(): void;
  takeParameterPart(): Promise<void>;
  shardStats(): ShardStats | null;
}

/** ZeRO stage 3's shard figures (bind_model_zero.cc). */
export interface ShardStats {
  /** elements of this rank's packed part (parameters and gradients alike) */
  partLength: number;
  /** most bytes of gathered parameters, their bf16 copies and gradients resident at once */
  peakResidentBytes: number;
  /** bytes of the gathers' and reduce-scatters' world-sized buffers */
  bufferBytes: number;
}

/**
 * An instance of the native `InferSession` class (bind_generate.cc): the tokens seen so far and
 * their keys and values per layer, over one native Model's weights (model/llama_infer.h).
 */
export interface NativeInferSession {
  length(): number;
  /** a copy of the cached tokens */
  tokens(): I32;
  truncate(length: number): void;
  /** logits: [vocab] of the last token, or [n * vocab] with allLogits */
  append(tokens: I32, logits: F32, allLogits: boolean): Promise<void>;
  cacheBytes(): number;
}

export interface NativeBinding {
  // bind_common.cc
  setThreads(n: number): void;
  getThreads(): number;
  /** Async calls queued since the addon loaded, by binding name (single-kernel bindings: "kernel"). */
  nativeCallCounts(): Record<string, number>;
  /** Optional leading dimensions (all three or none); without them each operand is exactly its matrix. */
  matmul(C: F32, A: F32, B: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number, lda?: number, ldb?: number, ldc?: number): Promise<void>;
  /** bf16 operands as Uint16Array bit patterns, fp32 C. */
  matmulBf16(C: F32, A: Uint16Array, B: Uint16Array, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number, lda?: number, ldb?: number, ldc?: number): Promise<void>;
  matmulOpenblas(C: F32, A: F32, B: F32, M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number): Promise<void>;
  matmulImpl(bf16: boolean, M: number, N: number, K: number, transA: boolean, transB: boolean): Promise<string>;
  f32ToBf16(out: Uint16Array, input: F32, portable: boolean): Promise<void>;
  bf16ToF32(out: F32, input: Uint16Array): Promise<void>;
  gemmInfo(): { onednn: string; avx512bf16: boolean };
  measurePeak(kind: 'fp32' | 'bf16', threads: number, secondsPerRep: number, reps: number): Promise<{ available: boolean; gflops: number; seconds: number; reps: number; threads: number; isa: string }>;
  readonly build: { openmp: number; blas: string };

  // bind_basic.cc
  linearForward(y: F32, x: F32, W: F32, b: F32 | null, n: number, inDim: number, outDim: number): Promise<void>;
  linearBackward(dx: F32 | null, dW: F32 | null, db: F32 | null, dy: F32, x: F32, W: F32, n: number, inDim: number, outDim: number): Promise<void>;
  embeddingForward(y: F32, ids: I32, table: F32, n: number, vocab: number, dim: number): Promise<void>;
  embeddingBackward(dtable: F32, dy: F32, ids: I32, n: number, vocab: number, dim: number): Promise<void>;
  rmsnormForward(y: F32, rstd: F32, x: F32, w: F32, n: number, dim: number, eps: number): Promise<void>;
  rmsnormBackward(dx: F32 | null, dw: F32 | null, dy: F32, x: F32, w: F32, rstd: F32, n: number, dim: number): Promise<void>;
  ropeForward(x: F32, pos: I32, n: number, heads: number, d: number, theta: number): Promise<void>;
  ropeBackward(dx: F32, pos: I32, n: number, heads: number, d: number, theta: number): Promise<void>;
  swigluForward(out: F32, gate: F32, up: F32, count: number): Promise<void>;
  swigluBackward(dgate: F32 | null, dup: F32 | null, dout: F32, gate: F32, up: F32, count: number): Promise<void>;
  residualForward(y: F32, a: F32, b: F32, count: number): Promise<void>;
  residualBackward(da: F32 | null, db: F32 | null, dy: F32, count: number): Promise<void>;

  // bind_attention.cc
  flashAttentionForward(out: F32, lse: F32, q: F32, k: F32, v: F32, ...shape: AttentionShapeArgs): Promise<void>;
  flashAttentionBackward(dq: F32, dk: F32, dv: F32, dout: F32, q: F32, k: F32, v: F32, out: F32, lse: F32, ...shape: AttentionShapeArgs): Promise<void>;
  /** out, q, k, v: bf16 bit patterns; lse fp32. */
  flashAttentionForwardBf16(out: Uint16Array, lse: F32, q: Uint16Array, k: Uint16Array, v: Uint16Array, ...shape: AttentionShapeArgs): Promise<void>;
  /** dq, dk, dv, lse fp32 (gradients accumulated); the rest bf16 bit patterns. */
  flashAttentionBackwardBf16(dq: F32, dk: F32, dv: F32, dout: Uint16Array, q: Uint16Array, k: Uint16Array, v: Uint16Array, out: Uint16Array, lse: F32, ...shape: AttentionShapeArgs): Promise<void>;
  attentionBf16Impl(): 'avx512bf16' | 'fp32-fallback';
  attentionReference(out: F32, q: F32, k: F32, v: F32, ...shape: AttentionShapeArgs): Promise<void>;
  attentionScratchPeak(): number;
  attentionResetScratchPeak(): void;
  lmHeadCeForward(tokenLoss: F32 | null, lse: F32 | null, h: F32, W: F32, labels: I32, n: number, dim: number, vocab: number, normalizer: number, chunk: number, argmax?: I32 | null): Promise<ForwardResult>;
  lmHeadCeBackward(dh: F32 | null, dW: F32 | null, h: F32, W: F32, labels: I32, lse: F32 | null, tokenWeight: F32 | null, n: number, dim: number, vocab: number, normalizer: number, chunk: number): Promise<void>;
  /** h, W: bf16 bit patterns. */
  lmHeadCeForwardBf16(tokenLoss: F32 | null, lse: F32 | null, h: Uint16Array, W: Uint16Array, labels: I32, n: number, dim: number, vocab: number, normalizer: number, chunk: number, argmax: I32 | null): Promise<ForwardResult>;
  lmHeadCeBackwardBf16(dh: F32 | null, dW: F32 | null, h: Uint16Array, W: Uint16Array, labels: I32, lse: F32 | null, tokenWeight: F32 | null, n: number, dim: number, vocab: number, normalizer: number, chunk: number): Promise<void>;

  // bind_optim.cc
  adamwStep(param: F32, m: F32, v: F32, grad: F32, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): Promise<void>;
  /** spans: [offset, numel] pairs */
  gradStats(grad: F32, spans: F64): Promise<GradStats>;
  /** first (default 0): the stream index of g[0], for a part of a tensor */
  addNoise(g: F32, n: number, std: number, seed: number, step: number, tensor: number, first?: number): Promise<void>;
  /** per span [sumAbs, sumSq, maxAbs, nonfinite] over finite values (spans: [offset, numel] pairs) */
  gradPartialSums(grad: F32, spans: F64): Promise<Float64Array>;
  philoxNormal(seed: number, step: number, tensor: number, i: number): number;
  philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): number[];
  scale(g: F32, n: number, factor: number): Promise<void>;
  centralize(g: F32, rows: number, cols: number): Promise<void>;
  clipByGlobalNorm(g: F32, n: number, norm: number, maxNorm: number): Promise<number>;
  zero(g: F32, n: number): Promise<void>;
  /**
   * The plan over every span, then (param given) AdamW over every span, in one worker hop.
   * spans: SPAN_COLUMNS numbers per span [offset, numel, rows, cols, flags, noiseTensor].
   */
  optimizerStep(grad: F32, spans: F64, plan: NativeGradPlan, meanAbs: F64 | null, param: F32 | null, m: F32 | null, v: F32 | null, adam: NativeAdamW | null): Promise<PlanEffects>;

  // bind_model*.cc, bind_convert.cc
  Model: new (config: ModelConfig) => NativeModel;
  loraDropoutMask(seed: number, stepKey: number, layer: number, module: number, count: number, p: number): Uint8Array;
  convertToF32(dst: F32, src: Uint8Array, dtype: 'F32' | 'F16' | 'BF16'): Promise<void>;
  /** IEEE half bit patterns, round to nearest even (kernels/f16.h). */
  f32ToF16(out: Uint16Array, input: F32): Promise<void>;

  // bind_generate.cc
  InferSession: new (model: NativeModel) => NativeInferSession;
  /** q: [n, H, d] at positions past..past+n-1; k, v: [past + n, Hkv, d]; scale 0: 1/sqrt(d). */
  attentionCachedForward(out: F32, q: F32, k: F32, v: F32, n: number, past: number, H: number, Hkv: number, d: number, window: number, scale: number): Promise<void>;

  // bind_comm.cc
  commConnect(rank: number, size: number, store: string | StoreRequest, timeoutMs: number, host: string, sharedMemory: boolean): Promise<CommHandle>;
  commSplit(h: CommHandle, tag: string, members: I32): Promise<CommHandle>;
  commClose(h: CommHandle): Promise<void>;
  commInfo(h: CommHandle): CommInfo;
  commAllReduceSum(h: CommHandle, x: F32): Promise<void>;
  commBroadcast(h: CommHandle, x: TypedArray, root: number): Promise<void>;
  commBarrier(h: CommHandle): Promise<void>;
  commAllGather(h: CommHandle, input: TypedArray, output: TypedArray): Promise<void>;
  commAllToAll(h: CommHandle, input: TypedArray, output: TypedArray): Promise<void>;
  /** output <- sum of chunk `rank` (output.length elements) of every rank's input: rank order within blocks of `block` ranks (default 1), then over the blocks */
  commReduceScatterSum(h: CommHandle, input: F32, output: F32, block?: number): Promise<void>;
  /** kind 0 seqToHead, 1 headToSeq, 2 seqToHeadKv, 3 headToSeqKvSum; with iters: the seconds of `iters` back-to-back calls. */
  commUlysses(kind: number, h: CommHandle, out: F32, x: F32, s: number, H: number, d: number): Promise<void>;
  commUlysses(kind: number, h: CommHandle, out: F32, x: F32, s: number, H: number, d: number, iters: number): Promise<number>;
  ulyssesKvHeadsPerRank(Hkv: number, P: number): number;
  memcpyGbps(bytes: number, minSeconds: number): Promise<number>;

  // bind_mmap.cc (synchronous: a mapping is a few system calls, no reading)
  /** A private copy-on-write mapping of bytes [offset, offset + length) of a file opened read-only; offset page-aligned. */
  mapFile(path: string, offset: number, length: number): ArrayBuffer;
  /** Detaches and unmaps a buffer of mapFile now; false when it was already released. */
  unmapFile(buffer: ArrayBuffer): boolean;
  // bind_cuda.cc
  cudaAvailability(): CudaAvailability;
  cudaDeviceInfo(device: number): CudaDeviceInfo;
  cudaLibraries(): DeviceLibraryStatus[];
  deviceLibraryCandidates(library: 'cublas' | 'nccl'): string[];
  deviceLibraryLoad(library: 'cublas' | 'nccl'): { path: string; error: string; tried: string[] };
  /** One CUDA kernel op over host buffers, laid out as the CPU binding of the same name (native/cuda/host_ops.cu); its scalar results. */
  cudaRunOp(name: string, device: number, buffers: (F32 | I32 | Uint16Array | F64 | null)[], scalars: number[]): Promise<number[]>;
  /** cuBLAS bf16 x bf16 -> fp32 GEMM rate of m x n x k products on `device`, TFLOP/s. */
  cudaGemmTflops(device: number, m: number, n: number, k: number, reps: number): Promise<number>;
  /** A fresh 128-byte NCCL unique id (ERR_DEVICE without CUDA or NCCL). */
  ncclUniqueId(): Uint8Array;
}

/** What the addon says about CUDA; never throws (no GPU is an answer, not an error). */
export interface CudaAvailability {
  /** native/cuda was compiled into this addon (nvcc was found when it was built). */
  built: boolean;
  /** Visible CUDA devices (0: none, or no driver). */
  devices: number;
  /** Why devices is 0 (empty otherwise). */
  reason: string;
  runtimeVersion: number;
  driverVersion: number;
  /** Device code compiled in, e.g. "sm_90". */
  arch: string;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  pciBusId: string;
  major: number;
  minor: number;
  multiprocessors: number;
  totalBytes: number;
  freeBytes: number;
}

export interface DeviceLibraryStatus {
  name: string;
  path: string;
  error: string;
  tried: string[];
  version: string;
}
