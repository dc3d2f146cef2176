/**
 * One line naming a model's family and the position encoding and attention pattern the engine
 * resolved from its config.json, for check-config and `up` to print before a job starts, e.g.
 *   llama, head_dim 128, rope llama3 x8 from 8192 (low_freq_factor 1, high_freq_factor 4), theta 5e5
 *   qwen3 (q/k norm), head_dim 128, rope default, theta 1e6
 *   mistral, head_dim 128, rope default, theta 1e6, sliding window 4096
 * Pure: it formats a parsed ModelConfig and never reads files or re-parses. `inspectModelConfig`
 * pairs the line with the problems of a config that cannot run.
 */
import { modelConfigProblems, parseModelConfig, type ModelConfig } from './modelConfig.js';
import type { ModelConfigProblem } from './modelConfigProblems.js';
import type { RopeConfig } from './ropeConfig.js';

/** 1e6, 5e5, 7.5e4 for round large numbers; up to 4 significant digits otherwise. */
export function compactNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) >= 1e4) {
    const e = x.toExponential();
    const [mantissa] = e.split('e');
    if (mantissa!.replace(/[-.]/g, '').length <= 2) return e.replace('e+', 'e');
    return String(x);
  }
  if (Number.isInteger(x)) return String(x);
  return String(Number(x.toPrecision(4)));
}

function describeRope(r: RopeConfig, maxPositionEmbeddings: number): string {
  const f = compactNumber(r.factor);
  switch (r.type) {
    case 'default':
      return 'rope default';
    case 'linear':
      return `rope linear x${f}`;
    case 'dynamic':
      return `rope dynamic x${f} above ${maxPositionEmbeddings}`;
    case 'llama3':
      return `rope llama3 x${f} from ${r.originalMaxPositionEmbeddings} (low_freq_factor ${compactNumber(r.lowFreqFactor)}, high_freq_factor ${compactNumber(r.highFreqFactor)})`;
    case 'yarn':
      return `rope yarn x${f} from ${r.originalMaxPositionEmbeddings} (attention factor ${compactNumber(r.attentionFactor)}, beta ${compactNumber(r.betaFast)}/${compactNumber(r.betaSlow)}${r.truncate ? '' : ', untruncated'})`;
  }
}

/** Which layers slide, as `layers a-b` (one run) or a count. */
function describeWindows(c: ModelConfig): string {
  const sliding = c.layerWindows.map((w, i) => (w > 0 ? i : -1)).filter((i) => i >= 0);
  if (sliding.length === 0 || c.slidingWindow === null) return '';
  const w = `sliding window ${c.slidingWindow}`;
  if (sliding.length === c.numHiddenLayers) return `, ${w}`;
  const contiguous = sliding[sliding.length - 1]! - sliding[0]! + 1 === sliding.length;
  const which = contiguous ? `layers ${sliding[0]}-${sliding[sliding.length - 1]}` : `${sliding.length} of ${c.numHiddenLayers} layers`;
  return `, ${w} on ${which}`;
}

/** The one-line description of a parsed config. */
export function describeModel(c: ModelConfig): string {
  const family = c.qkNorm ? `${c.modelType} (q/k norm)` : c.modelType;
  return `${family}, head_dim ${c.headDim}, ${describeRope(c.rope, c.maxPositionEmbeddings)}, theta ${compactNumber(c.ropeTheta)}${describeWindows(c)}`;
}

export interface ModelConfigReport {
  /** The description line; null when the config has problems. */
  description: string | null;
  /** Every problem, each naming its config.json key (empty when the engine runs the model as HF). */
  problems: ModelConfigProblem[];
}

/** Description and problems of an HF config object, for check-config and `up` (nothing thrown). */
export function inspectModelConfig(json: unknown): ModelConfigReport {
  const problems = modelConfigProblems(json);
  return { description: problems.length ? null : describeModel(parseModelConfig(json)), problems };
}
