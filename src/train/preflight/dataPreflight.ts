/**
 * The datasets of a job checked before any process starts, the way every rank will read them:
 * each name resolves (dataset_info.json entry or file), the file exists and has a known format,
 * its first rows parse and have the columns the stage needs, and the first examples tokenize with
 * the job's template and masking keys. The same for eval_dataset. Built-in tasks are generated,
 * so there is nothing to check. Reads at most ROWS_CHECKED rows per dataset; every finding is a
 * ConfigProblem naming the file, the row and the field (DataError's words). Must never train or
 * write anything.
 */
import type { ConfigProblem } from '../../config/ConfigError.js';
import type { JobConfig } from '../../config/JobConfig.js';
import { resolveDatasets } from '../data/datasetInfo.js';
import { DataError } from '../data/DataError.js';
import { dataStage, toExamples, type Example } from '../data/formats.js';
import { tokenizeExample } from '../data/prepareData.js';
import { readRows } from '../data/readRows.js';
import { encodeAnswer, encodePair } from '../data/templates.js';
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { templateOptionsOf } from '../trainWorkload.js';

/** Rows parsed and format-checked per dataset; the first TOKENIZED of them are also tokenized. */
export const ROWS_CHECKED = 1000;
const TOKENIZED = 32;

export interface DataPreflight {
  problems: ConfigProblem[];
  /** one line per dataset: `identity: examples/data/identity.json, 91 rows checked` */
  summary: string[];
}

function asProblem(key: string, e: unknown): ConfigProblem {
  // a problem about the key itself needs no "field 'dataset'" before it
  if (e instanceof DataError) return { key, message: e.file === undefined ? e.message.replace(/^field '[^']*': /, '') : e.message, fix: 'fix the data (or dataset_info.json), then run check-config again' };
  throw e;
}

/** `tok` null: the tokenizer could not be loaded (reported by the model checks), so rows are only parsed. */
export function dataPreflight(c: JobConfig, tok: TextTokenizer | null): DataPreflight {
  const out: DataPreflight = { problems: [], summary: [] };
  const sets: [string, string[]][] = [['dataset', c.dataset], ['eval_dataset', c.eval_dataset]];
  for (const [key, names] of sets) {
    if (names.length === 0 || names.every((n) => n.startsWith('builtin:'))) continue;
    let specs;
    try {
      specs = resolveDatasets(names, c.dataset_dir);
    } catch (e) {
      out.problems.push(asProblem(key, e));
      continue;
    }
    for (const spec of specs) {
      try {
        const limit = Math.min(c.max_samples ?? ROWS_CHECKED, ROWS_CHECKED);
        const rows = readRows(spec.file, limit);
        if (rows.length === 0) throw new DataError('holds no rows', { file: spec.file });
        const examples = toExamples(rows, spec, dataStage(c.stage));
        if (tok) for (const ex of examples.slice(0, TOKENIZED)) tokenize(ex, tok, c);
        out.summary.push(`${spec.name}: ${spec.file}, ${rows.length} row${rows.length === 1 ? '' : 's'} checked${tok ? `, ${Math.min(TOKENIZED, examples.length)} tokenized` : ''}`);
      } catch (e) {
        out.problems.push(asProblem(key, e));
      }
    }
  }
  return out;
}

function tokenize(ex: Example, tok: TextTokenizer, c: JobConfig): void {
  if (ex.kind === 'pair') encodePair(tok, c.template, ex, c.cutoff_len, templateOptionsOf(c));
  else if (ex.kind === 'feedback') encodeAnswer(tok, c.template, ex, ex.response, c.cutoff_len, templateOptionsOf(c));
  else tokenizeExample(ex, tok, c.template, c.cutoff_len, templateOptionsOf(c));
}
