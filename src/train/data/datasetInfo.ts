/**
 * Resolves the job's `dataset` names into files and formats, as LLaMA-Factory does: a name is
 * looked up in `dataset_dir/dataset_info.json`; a name that is not there but is an existing file
 * (as given, or inside dataset_dir) is used directly with its format detected from its rows.
 * Only local files: it must never reach the network (hub/script entries are refused).
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { DataError } from './DataError.js';

export interface Columns {
  prompt: string;
  query: string;
  response: string;
  history: string;
  messages: string;
  system: string;
  chosen: string;
  rejected: string;
  /** PT text column: LLaMA-Factory spells it `columns.prompt: text`; we default to `text`. */
  text: string;
  /** KTO: the boolean column telling a desirable answer (true) from an undesirable one */
  kto_tag: string;
}

export interface Tags {
  role: string;
  content: string;
  user: string;
  assistant: string;
  system: string;
}

export interface DatasetSpec {
  name: string;
  file: string;
  /** 'auto' when the dataset was given as a path: decided per file from its first row. */
  formatting: 'alpaca' | 'sharegpt' | 'auto';
  ranking: boolean | 'auto';
  columns: Columns;
  /** null: ShareGPT defaults from/value/human/gpt/system, or role/content/user/assistant/system rows. */
  tags: Tags | null;
}

const ALPACA_COLUMNS: Columns = {
  prompt: 'instruction', query: 'input', response: 'output', history: 'history', messages: 'conversations',
  system: 'system', chosen: 'chosen', rejected: 'rejected', text: 'text', kto_tag: 'kto_tag',
};
export const SHAREGPT_TAGS: Tags = { role: 'from', content: 'value', user: 'human', assistant: 'gpt', system: 'system' };
export const OPENAI_TAGS: Tags = { role: 'role', content: 'content', user: 'user', assistant: 'assistant', system: 'system' };

const UNSUPPORTED_SOURCES = ['hf_hub_url', 'ms_hub_url', 'om_hub_url', 'script_url', 'cloud_file_name'];

function str(entry: Record<string, unknown>, key: string, where: string, file: string): string | undefined {
  const v = entry[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new DataError(`must be a string`, { file, field: `${where}.${key}` });
  return v;
}

export function resolveDatasets(names: readonly string[], datasetDir: string): DatasetSpec[] {
  const infoPath = join(datasetDir, 'dataset_info.json');
  let info: Record<string, unknown> = {};
  if (existsSync(infoPath)) {
    try {
      info = JSON.parse(readFileSync(infoPath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new DataError(`invalid JSON: ${(err as Error).message}`, { file: infoPath }, { cause: err });
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw new DataError('must be an object of datasets', { file: infoPath });
  }
  if (names.length === 0) throw new DataError('no dataset given (set `dataset`)', { field: 'dataset' });
  return names.map((raw) => {
    const name = raw.trim();
    const entry = info[name];
    if (entry !== undefined) return fromInfo(name, entry, datasetDir, infoPath);
    for (const candidate of [name, isAbsolute(name) ? null : join(datasetDir, name)]) {
      if (candidate !== null && existsSync(candidate)) {
        return { name, file: candidate, formatting: 'auto', ranking: 'auto', columns: { ...ALPACA_COLUMNS }, tags: null } satisfies DatasetSpec;
      }
    }
    const known = Object.keys(info);
    throw new DataError(
      `dataset '${name}' is neither in ${infoPath} (${known.length > 0 ? 'known: ' + known.join(', ') : 'missing or empty'}) nor an existing file`,
      { field: 'dataset' },
    );
  });
}

const isColumn = (k: string): k is keyof Columns => k in ALPACA_COLUMNS;

function fromInfo(name: string, entry: unknown, dir: string, infoPath: string): DatasetSpec {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new DataError('must be an object', { file: infoPath, field: name });
  const e = entry as Record<string, unknown>;
  for (const k of UNSUPPORTED_SOURCES) {
    if (e[k] !== undefined && e.file_name === undefined) throw new DataError(`'${k}' datasets need the network; give a local file_name`, { file: infoPath, field: `${name}.${k}` });
  }
  const fileName = str(e, 'file_name', name, infoPath);
  if (fileName === undefined) throw new DataError('file_name is required', { file: infoPath, field: `${name}.file_name` });
  const formatting = str(e, 'formatting', name, infoPath) ?? 'alpaca';
  if (formatting !== 'alpaca' && formatting !== 'sharegpt') {
    throw new DataError(`formatting must be 'alpaca' or 'sharegpt', got '${formatting}'`, { file: infoPath, field: `${name}.formatting` });
  }
  if (e.ranking !== undefined && typeof e.ranking !== 'boolean') throw new DataError('must be a boolean', { file: infoPath, field: `${name}.ranking` });
  const columns = { ...ALPACA_COLUMNS };
  const cols = (e.columns ?? {}) as Record<string, unknown>;
  if (typeof cols !== 'object' || Array.isArray(cols)) throw new DataError('must be an object', { file: infoPath, field: `${name}.columns` });
  for (const key of Object.keys(cols)) {
    if (!isColumn(key)) continue; // tools, images, ...: not used by these formats
    const v = str(cols, key, `${name}.columns`, infoPath);
    if (v !== undefined) columns[key] = v;
  }
  // LLaMA-Factory's PT datasets name their text column through `prompt`.
  if (cols.prompt !== undefined && cols.text === undefined) columns.text = columns.prompt;
  let tags: Tags | null = null;
  if (e.tags !== undefined) {
    const t = e.tags as Record<string, unknown>;
    tags = { ...SHAREGPT_TAGS };
    const map: [keyof Tags, string][] = [['role', 'role_tag'], ['content', 'content_tag'], ['user', 'user_tag'], ['assistant', 'assistant_tag'], ['system', 'system_tag']];
    for (const [k, lf] of map) {
      const v = str(t, lf, `${name}.tags`, infoPath);
      if (v !== undefined) tags[k] = v;
    }
  }
  return {
    name,
    file: isAbsolute(fileName) ? fileName : join(dir, fileName),
    formatting,
    ranking: e.ranking === true,
    columns,
    tags,
  };
}
