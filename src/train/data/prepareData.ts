/**
 * One synchronous call from job config to training items in memory: resolve datasets, stream
 * their rows (max_samples per dataset, first rows kept as LLaMA-Factory does), normalize,
 * tokenize with the template, and build sequences (SFT/PT) or preference pairs (DPO). For small
 * datasets and tests; training jobs go through the token cache (tokenCache/), which runs the same
 * per-row functions on worker threads and keeps the result on disk. Deterministic; it must never
 * reorder data (the DataLoader shuffles) and never spread a data-sized array into a call.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { resolveDatasets } from './datasetInfo.js';
import { DataError } from './DataError.js';
import { encodeExample } from './encodeExample.js';
import { encodeFeedbackBatch, FEEDBACK_BATCH_ROWS, feedbackItem, type FeedbackItem } from './feedback.js';
import { detectFormat, toExample, type Example, type RowFormat, type Stage } from './formats.js';
import { streamRows } from './readRows.js';
import { buildSequences, preferencePair, type PackOptions, type PreferencePair, type Sequence } from './sequences.js';
import { IGNORE_INDEX, type SftOptions, type TemplateName, type TokenizedSample } from './templates.js';

export { tokenizeExample } from './encodeExample.js';

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
  /** kto: rows per preprocessing batch (default FEEDBACK_BATCH_ROWS) */
  feedbackBatchRows?: number;
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
  | { stage: 'dpo'; kind: 'pairs'; items: PreferencePair[]; stats: DataStats }
  | { stage: 'kto'; kind: 'feedback'; items: FeedbackItem[]; stats: DataStats };

/** The packing a job's data uses (LLaMA-Factory's defaults: pt packs and splits long documents). */
export function packOptions(cfg: Pick<DataConfig, 'stage' | 'cutoffLen' | 'packing'>): PackOptions {
  return { cutoffLen: cfg.cutoffLen, packing: cfg.packing ?? cfg.stage === 'pt', overflow: cfg.stage === 'pt' ? 'split' : 'truncate' };
}

export function checkCutoff(cutoffLen: number): void {
  if (!Number.isInteger(cutoffLen) || cutoffLen < 2) throw new DataError(`cutoff_len must be an integer >= 2, got ${cutoffLen}`, { field: 'cutoff_len' });
}

export function prepareData(cfg: DataConfig, tok: TextTokenizer): PreparedData {
  checkCutoff(cfg.cutoffLen);
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const docs: TokenizedSample[] = [];
  const pairs: PreferencePair[] = [];
  const feedback: FeedbackItem[] = [];
  const datasets: DataStats['datasets'] = [];
  const opts = { stage: cfg.stage, template: cfg.template, cutoffLen: cfg.cutoffLen, templateOptions: cfg.templateOptions };
  let examples = 0;
  for (const spec of specs) {
    let format: RowFormat | null = null;
    let n = 0;
    // kto: examples are encoded a preprocessing batch at a time (their KL sequences pair within it)
    let batch: Example[] = [];
    const flush = () => {
      for (const e of encodeFeedbackBatch(batch, tok, opts)) feedback.push(feedbackItem(e));
      batch = [];
    };
    for (const row of streamRows(spec.file, cfg.maxSamples ?? null)) {
      format ??= detectFormat(row, spec, cfg.stage);
      n++;
      if (cfg.stage === 'kto') {
        batch.push(toExample(row, format, spec));
        if (batch.length === (cfg.feedbackBatchRows ?? FEEDBACK_BATCH_ROWS)) flush();
        continue;
      }
      const enc = encodeExample(toExample(row, format, spec), tok, opts);
      if (enc.kind === 'pair') pairs.push(preferencePair(enc.prompt, enc.chosen, enc.rejected));
      else docs.push(enc);
    }
    if (batch.length) flush();
    datasets.push({ name: spec.name, file: spec.file, examples: n });
    examples += n;
  }
  if (examples === 0) throw new DataError(`the datasets ${cfg.dataset.join(', ')} hold no rows`, { field: 'dataset' });
  const stats: DataStats = { datasets, examples, items: 0, tokens: 0, supervisedTokens: 0 };
  const count = (labels: Int32Array): void => {
    stats.tokens += labels.length;
    for (const l of labels) if (l !== IGNORE_INDEX) stats.supervisedTokens++;
  };
  if (cfg.stage === 'kto') {
    for (const it of feedback) { count(it.target.labels); count(it.kl.labels); }
    stats.items = feedback.length;
    return { stage: 'kto', kind: 'feedback', items: feedback, stats };
  }
  if (cfg.stage === 'dpo') {
    for (const it of pairs) { count(it.chosen.labels); count(it.rejected.labels); }
    stats.items = pairs.length;
    return { stage: 'dpo', kind: 'pairs', items: pairs, stats };
  }
  const items = buildSequences(docs, packOptions(cfg));
  for (const s of items) count(s.labels);
  stats.items = items.length;
  return { stage: cfg.stage, kind: 'sequences', items, stats };
}
