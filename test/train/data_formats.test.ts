import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '../../src/train/tokenizer/index.js';
import { prepareData, resolveDatasets, readRows, toExamples, DataError, IGNORE_INDEX, type Sequence } from '../../src/train/data/index.js';

const tok = new ByteTokenizer(256);
const dir = 'examples/data';

function scratch(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'data-'));
  for (const [f, v] of Object.entries(files)) writeFileSync(join(d, f), v);
  return d;
}

t.test('every example dataset parses for its stage', async (t) => {
  const sft = ['identity', 'alpaca_en_demo', 'sharegpt_demo', 'messages_demo', 'pretokenized_demo'];
  for (const name of sft) {
    const d = prepareData({ stage: 'sft', dataset: [name], datasetDir: dir, template: 'default', cutoffLen: 512 }, tok);
    t.equal(d.kind, 'sequences');
    t.ok(d.stats.examples >= 2 && d.stats.supervisedTokens > 0, `${name}: ${d.stats.examples} examples, ${d.stats.supervisedTokens} supervised tokens`);
  }
  for (const name of ['dpo_en_demo', 'dpo_alpaca_demo']) {
    const d = prepareData({ stage: 'dpo', dataset: [name], datasetDir: dir, template: 'qwen', cutoffLen: 512 }, tok);
    t.equal(d.kind, 'pairs');
    t.ok(d.stats.examples >= 2, `${name}: ${d.stats.examples} pairs`);
  }
  for (const name of ['tiny_corpus', 'pt_text_demo']) {
    const d = prepareData({ stage: 'pt', dataset: [name], datasetDir: dir, template: 'default', cutoffLen: 256 }, tok);
    t.ok(d.items.length >= 2, `${name}: ${d.items.length} sequences`);
  }
  const tiny = prepareData({ stage: 'pt', dataset: ['tiny_corpus'], datasetDir: dir, template: 'default', cutoffLen: 256 }, tok);
  t.ok(tiny.items.length >= 40, `tiny_corpus gives ${tiny.items.length} packed 256-token sequences (>= 40 for 20 steps x dp 1, 2 epochs)`);
  const both = prepareData({ stage: 'sft', dataset: ['identity', 'alpaca_en_demo'], datasetDir: dir, template: 'llama3', cutoffLen: 2048, maxSamples: 3 }, tok);
  t.same(both.stats.datasets.map((x) => x.examples), [3, 3], 'max_samples applies per dataset');
});

t.test('sharegpt from/value and role/content rows give the same conversation', async (t) => {
  const d = scratch({
    'a.json': JSON.stringify([{ conversations: [{ from: 'system', value: 'S' }, { from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }] }]),
    'b.jsonl': JSON.stringify({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] }) + '\n',
  });
  const [sa, sb] = resolveDatasets(['a.json', 'b.jsonl'], d);
  const ea = toExamples(readRows(sa!.file), sa!, 'sft');
  const eb = toExamples(readRows(sb!.file), sb!, 'sft');
  t.same(ea.map((e) => ({ ...e, origin: null })), eb.map((e) => ({ ...e, origin: null })));
  t.same(ea[0], { kind: 'sft', system: 'S', turns: [{ user: 'Q', assistant: 'A' }], origin: ea[0]!.origin });
});

t.test('plain text: one document per non-empty line', async (t) => {
  const d = scratch({ 'c.txt': 'first doc\n\nsecond doc\r\n' });
  const rows = readRows(join(d, 'c.txt'));
  t.same(rows.map((r) => [r.row, (r.value as { text: string }).text]), [[1, 'first doc'], [3, 'second doc']]);
});

t.test('pre-tokenized rows are used as is, only cut to cutoff_len', async (t) => {
  const d = scratch({ 'p.jsonl': JSON.stringify({ input_ids: [5, 6, 7, 8, 9], labels: [-100, -100, 7, 8, 9] }) + '\n' + JSON.stringify({ input_ids: [40, 41, 42] }) + '\n' });
  const r = prepareData({ stage: 'sft', dataset: ['p.jsonl'], datasetDir: d, template: 'llama3', cutoffLen: 4 }, tok);
  const s = r.items as Sequence[];
  t.same(Array.from(s[0]!.tokens), [5, 6, 7, 8], 'no BOS/EOS added, cut at 4');
  t.same(Array.from(s[0]!.labels), [-100, 7, 8, -100], 'shifted labels');
  t.same(Array.from(s[1]!.tokens), [40, 41, 42]);
  t.same(Array.from(s[1]!.labels), [41, 42, -100], 'labels default to input_ids');
});

function expectDataError(t: Test, fn: () => unknown, file: string, row: number, field: string | undefined): void {
  try {
    fn();
    t.fail(`expected a DataError for ${file} row ${row} field ${field}`);
  } catch (err) {
    t.ok(err instanceof DataError, `a DataError: ${(err as Error).message}`);
    const e = err as DataError;
    t.equal(e.code, 'ERR_DATA');
    t.ok(e.file?.endsWith(file), `names the file (${e.file})`);
    t.equal(e.row, row, 'names the row');
    t.equal(e.field, field, 'names the field');
    t.match(e.message, file);
  }
}

t.test('malformed rows are errors naming file, row and field', async (t) => {
  const d = scratch({
    'alp.json': JSON.stringify([{ instruction: 'a', output: 'b' }, { instruction: 'c', output: 7 }]),
    'alp2.jsonl': '{"instruction":"a","output":"b"}\n\n{"input":"x","output":"y"}\n',
    'bad.jsonl': '{"instruction":"a","output":"b"}\n{not json}\n',
    'sg.json': JSON.stringify([{ conversations: [{ from: 'human', value: 'q' }, { from: 'human', value: 'q2' }] }]),
    'sg2.json': JSON.stringify([{ conversations: [{ from: 'human', value: 'q' }, { from: 'bot', value: 'a' }] }]),
    'tok.jsonl': '{"input_ids":[1,2,3]}\n{"input_ids":[1,"x"]}\n',
    'tok2.jsonl': '{"input_ids":[1,2,3],"labels":[1,2]}\n',
    'tok3.jsonl': '{"input_ids":[1,2,300]}\n',
    'tok4.jsonl': '{"input_ids":[1,2,3],"labels":[-100,2,2100]}\n',
    'dpo.json': JSON.stringify([{ instruction: 'q', chosen: 'a' , rejected: 'b' }, { instruction: 'q', chosen: 'a' }]),
    'hist.json': JSON.stringify([{ instruction: 'q', output: 'a', history: [['only one']] }]),
  });
  const run = (f: string, stage: 'sft' | 'dpo' | 'pt' = 'sft') => () =>
    prepareData({ stage, dataset: [f], datasetDir: d, template: 'default', cutoffLen: 64 }, tok);
  expectDataError(t, run('alp.json'), 'alp.json', 1, 'output');
  expectDataError(t, run('alp2.jsonl'), 'alp2.jsonl', 3, 'instruction');
  expectDataError(t, run('bad.jsonl'), 'bad.jsonl', 2, undefined);
  expectDataError(t, run('sg.json'), 'sg.json', 0, 'conversations[1].from');
  expectDataError(t, run('sg2.json'), 'sg2.json', 0, 'conversations[1].from');
  expectDataError(t, run('tok.jsonl'), 'tok.jsonl', 2, 'input_ids[1]');
  expectDataError(t, run('tok2.jsonl'), 'tok2.jsonl', 1, 'labels');
  expectDataError(t, run('tok3.jsonl'), 'tok3.jsonl', 1, 'input_ids[2]');
  expectDataError(t, run('tok4.jsonl'), 'tok4.jsonl', 1, 'labels[2]');
  expectDataError(t, run('dpo.json', 'dpo'), 'dpo.json', 1, 'rejected');
  expectDataError(t, run('hist.json'), 'hist.json', 0, 'history[0]');
  t.throws(run('missing_name'), { code: 'ERR_DATA', message: /missing_name/ });
  t.throws(run('alp.json', 'dpo'), { code: 'ERR_DATA', message: /not a preference dataset/ });
});

t.test('dataset_info.json columns and tags are honoured', async (t) => {
  const d = scratch({
    'dataset_info.json': JSON.stringify({
      custom: { file_name: 'c.json', columns: { prompt: 'q', response: 'a', system: 'sys' } },
      chat: { file_name: 'm.json', formatting: 'sharegpt', columns: { messages: 'turns' }, tags: { role_tag: 'who', content_tag: 'text', user_tag: 'me', assistant_tag: 'it' } },
      hub: { hf_hub_url: 'someone/data' },
    }),
    'c.json': JSON.stringify([{ q: 'Q', a: 'A', sys: 'S' }]),
    'm.json': JSON.stringify([{ turns: [{ who: 'me', text: 'Q' }, { who: 'it', text: 'A' }] }]),
  });
  const [c, m] = resolveDatasets(['custom', 'chat'], d);
  t.same(toExamples(readRows(c!.file), c!, 'sft')[0], { kind: 'sft', system: 'S', turns: [{ user: 'Q', assistant: 'A' }], origin: { file: c!.file, row: 0, rowKind: 'index' } });
  t.same((toExamples(readRows(m!.file), m!, 'sft')[0] as { turns: unknown }).turns, [{ user: 'Q', assistant: 'A' }]);
  t.throws(() => resolveDatasets(['hub'], d), { code: 'ERR_DATA', message: /hf_hub_url/ });
});

t.test('SFT labels: only responses are supervised (default template, two turns)', async (t) => {
  const d = scratch({ 'x.json': JSON.stringify([{ instruction: 'q2', output: 'a2', history: [['q1', 'a1']] }]) });
  const r = prepareData({ stage: 'sft', dataset: ['x.json'], datasetDir: d, template: 'default', cutoffLen: 1024 }, tok);
  const s = (r.items as Sequence[])[0]!;
  t.equal(tok.decode(s.tokens), 'Human: q1\nAssistant:a1\x02\nHuman: q2\nAssistant:a2\x02', 'layout (EOS = byte 2)');
  t.equal(tok.decode(s.tokens, { skipSpecial: true }), 'Human: q1\nAssistant:a1\nHuman: q2\nAssistant:a2');
  const supervised = Array.from(s.labels).filter((l) => l !== IGNORE_INDEX);
  t.same(supervised, [...tok.encode('a1'), 2, ...tok.encode('a2'), 2], 'both assistant turns and their EOS are targets, nothing else');
});

t.test('PT documents: BOS + text + EOS per line, packed with boundaries', async (t) => {
  const d = scratch({ 'c.txt': 'ab\ncde\n' });
  const r = prepareData({ stage: 'pt', dataset: ['c.txt'], datasetDir: d, template: 'default', cutoffLen: 64 }, tok);
  const s = (r.items as Sequence[])[0]!;
  t.same(Array.from(s.tokens), [1, 97, 98, 2, 1, 99, 100, 101, 2]);
  t.same(Array.from(s.docLens), [4, 5]);
  t.same(Array.from(s.labels), [97, 98, 2, -100, 99, 100, 101, 2, -100], 'every token is a target except at document ends');
});
