/**
 * Fuzz target `dataset-info`: a dataset_info.json (train/data/datasetInfo.ts: file_name,
 * formatting, ranking, columns, tags, hub entries) resolved and prepared over a fixed set of
 * small valid data files of every format, so the fuzzer explores how entries map columns and
 * tags onto real rows. The datasets asked for are the entries' own names (at most eight; a
 * document that is no object asks for `alpaca`); the stage follows the input's length.
 * Only a DataError is a documented refusal; whatever is accepted must meet the prepared-data
 * contract (dataInvariants.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../../src/train/data/DataError.js';
import { prepareData, type Stage } from '../../src/train/data/index.js';
import { ByteTokenizer } from '../../src/train/tokenizer/ByteTokenizer.js';
import { checkPrepared } from './dataInvariants.js';
import { expectOnly, scratchDir } from './harness.js';

const STAGES: readonly Stage[] = ['pt', 'sft', 'dpo'];
const CUTOFF = 48;
const VOCAB = 256;

const line = (o: unknown) => JSON.stringify(o);
/** One small valid file per row format the loaders know. */
const FILES: Readonly<Record<string, string>> = {
  'alpaca.json': line([{ instruction: 'Add 2 and 2.', input: '', output: '4', system: 'Be brief.', history: [['Hi', 'Hello']] }, { instruction: 'Name a colour.', output: 'Red' }]),
  'sharegpt.json': line([{ conversations: [{ from: 'human', value: 'Hi' }, { from: 'gpt', value: 'Hello' }], system: 'Be kind.' }]),
  'messages.jsonl': [line({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] })].join('\n'),
  'dpo_alpaca.jsonl': [line({ instruction: 'Pick one.', input: 'a or b', chosen: 'a', rejected: 'b' }), line({ instruction: 'Spell it.', chosen: 'receive', rejected: 'recieve' })].join('\n'),
  'dpo_sharegpt.json': line([{ conversations: [{ from: 'human', value: 'Best?' }], chosen: { from: 'gpt', value: 'This' }, rejected: { from: 'gpt', value: 'That' } }]),
  'corpus.txt': 'The first document.\nThe second, longer document of the corpus.\n',
  'pt.jsonl': [line({ text: 'plain text row' }), line({ content: 'another column' })].join('\n'),
  'tokens.jsonl': [line({ input_ids: [1, 72, 105, 2], labels: [-100, 72, 105, 2] }), line({ input_ids: [1, 66, 2] })].join('\n'),
};

function setup(dir: string): void {
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(dir, name), text);
}

function namesOf(text: string): string[] {
  try {
    const doc: unknown = JSON.parse(text);
    if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) return Object.keys(doc).slice(0, 8);
  } catch {
    // not JSON: the loader must say so; ask for a name so it reads the file
  }
  return ['alpaca'];
}

export function fuzz(data: Buffer): void {
  const dir = scratchDir('dataset-info', setup);
  const text = data.toString('utf8');
  writeFileSync(join(dir, 'dataset_info.json'), text);
  const stage = STAGES[data.length % 3]!;
  const prepared = expectOnly(
    () => prepareData({ stage, dataset: namesOf(text), datasetDir: dir, template: 'default', cutoffLen: CUTOFF, maxSamples: 4 }, new ByteTokenizer(VOCAB)),
    (e) => e instanceof DataError,
  );
  if (prepared) checkPrepared(prepared, CUTOFF, VOCAB);
}
