/**
 * Merging a PEFT LoRA adapter directory into a model's base weights, as PEFT's merge_and_unload
 * does: W += (alpha / r) B A for every adapted linear module (fan_in_fan_out false), the product
 * in fp32 through the engine's matmul (alpha as the product's scale, beta 1). The adapter's
 * settings and tensors are checked as loadAdapter checks them (lora.ts: plain LoRA only, exact
 * names and shapes). Must never merge into a model with adapters attached (their base would no
 * longer be the one they were trained on).
 */
import { EngineError } from '../errors.js';
import { LORA_MODULES, readAdapterConfig, readAdapterWeights, type AdapterView, type LoraModule } from '../lora.js';
import { matmul } from '../ops/matmul.js';
import type { Model } from './Model.js';

export interface MergedAdapter {
  rank: number;
  alpha: number;
  targets: LoraModule[];
  /** linear weights changed */
  tensors: number;
}

const PARENT: Record<LoraModule, string> = {
  q_proj: 'self_attn', k_proj: 'self_attn', v_proj: 'self_attn', o_proj: 'self_attn',
  gate_proj: 'mlp', up_proj: 'mlp', down_proj: 'mlp',
};

export async function mergeAdapter(model: Model, dir: string): Promise<MergedAdapter> {
  if (model.lora) throw new EngineError('ERR_STATE', `mergeAdapter: ${dir}: the model has adapters attached; merge into a plain base model`);
  const cfg = await readAdapterConfig(dir);
  const r = cfg.rank;
  // PEFT's tensor names in the engine's order (lora_A then lora_B per layer and module), laid out
  // in one temporary buffer.
  const views: AdapterView[] = [];
  const bases: string[] = [];
  let offset = 0;
  for (let l = 0; l < model.config.numHiddenLayers; l++) {
    for (const m of LORA_MODULES) {
      if (!cfg.targets.includes(m)) continue;
      const base = `model.layers.${l}.${PARENT[m]}.${m}`;
      const [out, inn] = model.view(`${base}.weight`).shape as [number, number];
      const prefix = `base_model.model.${base}`;
      views.push({ name: `${prefix}.lora_A.weight`, offset, shape: [r, inn], numel: r * inn });
      offset += r * inn;
      views.push({ name: `${prefix}.lora_B.weight`, offset, shape: [out, r], numel: out * r });
      offset += out * r;
      bases.push(base);
    }
  }
  const buf = new Float32Array(offset);
  await readAdapterWeights(dir, views, buf);
  const scale = cfg.alpha / r;
  for (let i = 0; i < bases.length; i++) {
    const a = views[2 * i]!, b = views[2 * i + 1]!;
    const W = model.param(`${bases[i]}.weight`);
    const [out, inn] = [b.shape[0]!, a.shape[1]!];
    // W[out, in] += scale * B[out, r] A[r, in]
    await matmul(W, buf.subarray(b.offset, b.offset + b.numel), buf.subarray(a.offset, a.offset + a.numel), out, inn, r, { alpha: scale, beta: 1 });
  }
  // a bf16 model computes with a copy of these weights: refresh it before the next forward
  model.weightsChanged();
  return { rank: r, alpha: cfg.alpha, targets: cfg.targets, tensors: bases.length };
}
