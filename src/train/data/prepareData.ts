/**
 * One call from job config to training items: resolve datasets, read rows (max_samples per
 * dataset, first rows kept as LLaMA-Factory does), normalize, tokenize with the template, and
 * build sequences (SFT/PT) or preference pairs (DPO). Deterministic and synchronous; every rank
 * runs it and gets identical items. It must never reorder data (the DataLoader shuffles).
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { resolveDatasets } from './datasetInfo.js';
import { DataError } from './DataError.js';
import { toExamples, type Example, type Stage } from './formats.js';
import { readRows } from './readRows.js';
import { buildSequences, preferencePair, type PreferencePair, type Sequence } from './sequences.js';
import { encodePair, encodeSft, IGNORE_INDEX, type SftOptions, type TemplateName, type TokenizedSample } from './templates.js';

export interface DataConfig {
  stage: Stage;
  /** Names in dataset_dir/dataset_info.json, or file paths. */
  dataset: readonly string[];
  datasetDir: string;
  template: TemplateName;
  cutoffLen: number;
  maxSamples?: number | null;
  /** null/undefined: true for pt, false otherwise (never packs DPO pairs). */
  packing?: boolean | null;
  /** default_system, enable_thinking, train_on_prompt, mask_history */
  templateOptions?: SftOptions;
}

export interface DataStats {
  datasets: { name: string; file: string; examples: number }[];
  examples: number;
  items: number;
  tokens: number;
  supervisedTokens: number;
}

export type PreparedData =
  | { stage: 'pt' | 'sft'; kind: 'sequences'; items: Sequence[]; stats: DataStats }
  | { stage: 'dpo'; kind: 'pairs'; items: PreferencePair[]; stats: DataStats };

function where(ex: Example): { file: string; row: number; rowKind: 'line' | 'index' } {
  return ex.origin;
}

function ptEos(tok: TextTokenizer, template: TemplateName): number {
  if (template === 'llama3' && tok.kind === 'hf') {
    const ids = tok.encode('<|end_of_text|>');
    if (ids.length === 1) return ids[0]!;
  }
  return tok.eosId;
}

/** Tokenizes one PT/SFT example into an unshifted sample (pre-tokenized rows: cut only). */
export function tokenizeExample(ex: Example, tok: TextTokenizer, template: TemplateName, cutoffLen: number, o: SftOptions = {}): TokenizedSample {
  switch (ex.kind) {
    case 'tokens': {
      ex.inputIds.forEach((id, i) => {
        if (id >= tok.vocabSize) throw new DataError(`token id ${id} does not fit vocab_size ${tok.vocabSize}`, { ...where(ex), field: `input_ids[${i}]` });
      });
      ex.labels?.forEach((id, i) => {
        if (id !== IGNORE_INDEX && (id < 0 || id >= tok.vocabSize)) throw new DataError(`label ${id} is neither ${IGNORE_INDEX} (ignored) nor a token id below vocab_size ${tok.vocabSize}`, { ...where(ex), field: `labels[${i}]` });
      });
      const n = Math.min(cutoffLen, ex.inputIds.length);
      return { inputIds: ex.inputIds.slice(0, n), labels: (ex.labels ?? ex.inputIds).slice(0, n) };
    }
    case 'text': {
      // As LLaMA-Factory's PT processor: BOS when the tokenizer adds one, the text, EOS
      // (`<|end_of_text|>` for the llama3 template, whose chat EOS is <|eot_id|>).
      const ids = [...(tok.addBos && tok.bosId !== null ? [tok.bosId] : []), ...tok.encode(ex.text), ptEos(tok, template)];
      return { inputIds: ids, labels: ids };
    }
    case 'sft':
      return encodeSft(tok, template, ex, cutoffLen, o);
    case 'pair':
      throw new DataError('a preference pair cannot be used for pt/sft', where(ex));
  }
}

export function prepareData(cfg: DataConfig, tok: TextTokenizer): PreparedData {
  if (!Number.isInteger(cfg.cutoffLen) || cfg.cutoffLen < 2) throw new DataError(`cutoff_len must be an integer >= 2, got ${cfg.cutoffLen}`, { field: 'cutoff_len' });
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const examples: Example[] = [];
  const datasets: DataStats['datasets'] = [];
  for (const spec of specs) {
    const exs = toExamples(readRows(spec.file, cfg.maxSamples ?? null), spec, cfg.stage);
    datasets.push({ name: spec.name, file: spec.file, examples: exs.length });
    examples.push(...exs);
  }
  if (examples.length === 0) throw new DataError(`the datasets ${cfg.dataset.join(', ')} hold no rows`, { field: 'dataset' });
  const stats: DataStats = { datasets, examples: examples.length, items: 0, tokens: 0, supervisedTokens: 0 };
  const count = (labels: Int32Array, n: number): void => {
    stats.tokens += n;
    for (const l of labels) if (l !== -100) stats.supervisedTokens++;
  };
  if (cfg.stage === 'dpo') {
    const items = examples.map((ex) => {
      if (ex.kind !== 'pair') throw new DataError('stage dpo needs chosen/rejected pairs', where(ex));
      const p = encodePair(tok, cfg.template, ex, cfg.cutoffLen, cfg.templateOptions);
      return preferencePair(p.prompt, p.chosen, p.rejected);
    });
    for (const it of items) { count(it.chosen.labels, it.chosen.tokens.length); count(it.rejected.labels, it.rejected.tokens.length); }
    stats.items = items.length;
    return { stage: 'dpo', kind: 'pairs', items, stats };
  }
  const samples = examples.map((ex) => tokenizeExample(ex, tok, cfg.template, cfg.cutoffLen, cfg.templateOptions));
  const items = buildSequences(samples, {
    cutoffLen: cfg.cutoffLen,
    packing: cfg.packing ?? cfg.stage === 'pt',
    overflow: cfg.stage === 'pt' ? 'split' : 'truncate',
  });
  for (const s of items) count(s.labels, s.tokens.length);
  stats.items = items.length;
  return { stage: cfg.stage, kind: 'sequences', items, stats };
}
