/**
 * `bench step --device cuda`: the reference rate first (the card's cuBLAS bf16 x bf16 -> fp32
 * GEMM, measured in this run on the rank's GPU), then the training step of `bench step` on the
 * CUDA model, whose attention time is reported as a fraction of that rate. Where the addon cannot
 * run the CUDA model (no GPU, CUDA not compiled in, no CUDA model bound) the step fails with
 * ERR_DEVICE after the reference rate is logged. Must never report a CPU step as a CUDA one.
 */
import { cudaAvailability, deviceFacts, selectDevice } from '../src/engine/device/index.js';
import { EngineError } from '../src/engine/errors.js';
import { Model } from '../src/engine/model/index.js';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { native } from '../src/engine/native.js';
import type { BenchResult } from './types.js';

export async function runStepCuda(o: { config: string; seq: number; steps: number; checkpointing: boolean }, log: (line: string) => void): Promise<BenchResult> {
  const a = cudaAvailability();
  if (!a.built || a.devices < 1) throw new EngineError('ERR_DEVICE', `bench step --device cuda: ${a.built ? 'no CUDA device is visible' : 'CUDA was not compiled in'} (${a.reason})`);
  const gpu = selectDevice('cuda', { ...deviceFacts(), cudaModel: true }).index;
  // 4096^3, 20 products after the warm-up: long enough to reach the card's sustained clocks
  const tflops = await native().cudaGemmTflops(gpu, 4096, 4096, 4096, 20);
  log(`cuBLAS bf16 GEMM 4096^3 on GPU ${gpu}: ${tflops.toFixed(1)} TFLOP/s (the attention's reference)`);
  const cfg = await readModelConfig(o.config);
  // the device seam refuses where no CUDA model is bound (ERR_DEVICE): never a CPU step in its place
  const model = await Model.create(cfg, { seed: 1, checkpointing: o.checkpointing, device: 'cuda' });
  model.close();
  throw new EngineError('ERR_DEVICE', `bench step --device cuda: the CUDA model ran no step (seq ${o.seq}, steps ${o.steps}); bf16 GEMM reference ${tflops.toFixed(1)} TFLOP/s`);
}
