/**
 * The model's LoRA adapters: attaching them to the native model (PEFT's initialization, the base
 * frozen from then on) and loading a PEFT adapter directory into them, attaching with the file's
 * settings when none are attached yet. PEFT's names and on-disk layout live in ../lora.ts.
 * Must never load an adapter whose rank, alpha or targets differ from the attached ones.
 */
import { EngineError } from '../errors.js';
import { readAdapterConfig, readAdapterWeights, resolveLora, targetMask, type ResolvedLora } from '../lora.js';
import type { NativeModel } from '../nativeBinding.js';
import type { TrainableSet } from './TrainableSet.js';

/** The attached adapters: their settings and flat buffers (PEFT names in `views`). */
export interface LoraState extends ResolvedLora, TrainableSet {}

/** Attaches adapters with resolved options `l` to a model that has none; resolves to their state. */
export async function attachAdapters(h: NativeModel, l: ResolvedLora): Promise<LoraState> {
  h.attachLora({ rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: targetMask(l.targets), seed: l.seed });
  const state: LoraState = { ...l, params: h.loraParams()!, grads: h.loraGrads()!, views: h.loraViews() };
  await h.initLora(l.seed);
  return state;
}

/**
 * Loads the PEFT adapters in `dir`: into `attached` (whose settings must match the file's,
 * ERR_CONFIG), or into adapters attached here with the file's settings and seed `seed`.
 */
export async function loadAdapters(h: NativeModel, attached: LoraState | null, dir: string, seed: number): Promise<LoraState> {
  const cfg = await readAdapterConfig(dir);
  let l = attached;
  if (!l) {
    l = await attachAdapters(h, resolveLora({ ...cfg, seed }));
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
