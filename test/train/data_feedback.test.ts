// KTO data as LLaMA-Factory's feedback processor builds it: ShareGPT and alpaca rows with a boolean
// kto_tag column, each example's KL sequence its own prompt with the answer of the example before
// it within a preprocessing batch of 1000 rows (the first takes the batch's last), every sequence
// truncated on its own; the token cache gives exactly the in-memory items; bad tags and
// preference datasets are errors naming the problem.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteTokenizer } from '../../src/train/tokenizer/index.js';
import {
  buildCache, cacheDigest, cacheKeyOf, packOptions, prepareData, publishCache, resolveDatasets, TokenCache, tokenDtypeFor,
  type BuildRequest, type DataConfig, type PreferenceSequence,
} from '../../src/train/data/index.js';
import { FEEDBACK_BATCH_ROWS, type FeedbackItem } from '../../src/train/data/feedback.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'ua-kto-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const tok = new ByteTokenizer(256);

const cfgOf = (dataset: string, datasetDir: string, cutoffLen = 256): DataConfig => ({ stage: 'kto', dataset: [dataset], datasetDir, template: 'llama3', cutoffLen });

function prepared(cfg: DataConfig): FeedbackItem[] {
  const p = prepareData(cfg, tok);
  if (p.kind !== 'feedback') throw new Error(`expected KTO examples, got ${p.kind}`);
  return p.items;
}

const answer = (s: PreferenceSequence) => Array.from(s.tokens.subarray(s.promptLen));
const prompt = (s: PreferenceSequence) => Array.from(s.tokens.subarray(0, s.promptLen));

t.test('kto_en_demo: tags from the label column, KL sequences borrow the previous example\'s answer', async (t) => {
  const rows = JSON.parse(readFileSync(join(repo, 'examples/data/kto_en_demo.json'), 'utf8')) as { messages: { content: string }[]; label: boolean }[];
  const items = prepared(cfgOf('kto_en_demo', join(repo, 'examples/data')));
  t.equal(items.length, rows.length, `${items.length} examples`);
  t.same(items.map((it) => it.desirable), rows.map((r) => r.label), 'the tags are the label column');
  t.ok(items.some((it) => it.desirable) && items.some((it) => !it.desirable), 'both kinds present');
  const n = items.length;
  for (let i = 0; i < n; i++) {
    const it = items[i]!;
    const prev = items[(i + n - 1) % n]!;
    t.same(prompt(it.kl), prompt(it.target), `example ${i}: the KL sequence keeps its prompt`);
    t.same(answer(it.kl), answer(prev.target), `example ${i}: with the answer of example ${(i + n - 1) % n}`);
    // supervised: the answer tokens only (labels shifted by one)
    const sup = Array.from(it.target.labels).filter((l) => l !== -100);
    t.same(sup, answer(it.target), `example ${i}: the answer is supervised`);
  }
  t.match(tok.decode(Int32Array.from(answer(items[0]!.target))), rows[0]!.messages[1]!.content, 'the answer is the last assistant message');
});

t.test('pairing stays within preprocessing batches of 1000 rows; alpaca rows; each sequence truncated on its own', async (t) => {
  const dir = join(root, 'alpaca');
  const n = FEEDBACK_BATCH_ROWS + 3;
  const rows = Array.from({ length: n }, (_, i) => ({ instruction: `q${i}`, output: `answer ${i}${i === 1 ? ' that is long '.repeat(8) : ''}`, kto_tag: i % 3 !== 0 }));
  require_dir(dir);
  writeFileSync(join(dir, 'fb.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify({ fb: { file_name: 'fb.jsonl', columns: { prompt: 'instruction', response: 'output', kto_tag: 'kto_tag' } } }));
  const items = prepared(cfgOf('fb', dir, 48));
  t.equal(items.length, n);
  const text = (a: number[]) => tok.decode(Int32Array.from(a));
  t.match(text(answer(items[0]!.kl)), `answer ${FEEDBACK_BATCH_ROWS - 1}`, 'row 0 borrows the last answer of its batch');
  t.match(text(answer(items[FEEDBACK_BATCH_ROWS]!.kl)), `answer ${n - 1}`, 'the second batch pairs within itself');
  t.match(text(answer(items[FEEDBACK_BATCH_ROWS + 1]!.kl)), `answer ${FEEDBACK_BATCH_ROWS}`);
  t.same(prompt(items[3]!.kl), prompt(items[3]!.target), 'the KL sequence keeps its own prompt');
  t.ok(items.every((it) => it.kl.tokens.length <= 48 && it.target.tokens.length <= 48), 'cutoff_len applies to each sequence');
  // example 2 borrows example 1's long answer: its KL sequence is truncated on its own (infer_seqlen)
  t.equal(items[2]!.kl.tokens.length, 48);
  t.ok(items[2]!.kl.promptLen < items[2]!.target.promptLen, `the long borrowed answer takes its share of the budget (prompt ${items[2]!.kl.promptLen} < ${items[2]!.target.promptLen} tokens)`);
  t.same(prompt(items[2]!.kl), prompt(items[2]!.target).slice(0, items[2]!.kl.promptLen), 'the KL prompt is a prefix of its own prompt');
  t.same(items.slice(0, 6).map((it) => it.desirable), [false, true, true, false, true, true]);

  // the token cache: the same items, whatever the batch bytes
  const cfg = cfgOf('fb', dir, 48);
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const pack = packOptions(cfg);
  const key = cacheKeyOf({ stage: 'kto', template: cfg.template, templateOptions: {}, specs, pack, maxSamples: null, modelDir: null, vocabSize: 256 });
  const out = join(root, 'cache');
  const req: BuildRequest = {
    dir: out + '.tmp', key, digest: cacheDigest(key), specs, pack, maxSamples: null, tokenDtype: tokenDtypeFor(256),
    opts: { stage: 'kto', template: cfg.template, cutoffLen: cfg.cutoffLen, templateOptions: {} }, tokenizer: { modelDir: null, vocabSize: 256 }, workers: 0, batchBytes: 512,
  };
  await buildCache(req);
  publishCache(req.dir, out, false);
  const cache = TokenCache.open(out, { vocabSize: 256 });
  try {
    t.equal(cache.kind, 'feedback');
    const src = cache.feedback();
    t.equal(src.length, n);
    const plain = (s: PreferenceSequence) => ({ tokens: Array.from(s.tokens), labels: Array.from(s.labels), positions: Array.from(s.positions), promptLen: s.promptLen });
    const same = items.every((it, i) => {
      const c = src.at(i)!;
      return c.desirable === it.desirable && JSON.stringify(plain(c.target)) === JSON.stringify(plain(it.target)) && JSON.stringify(plain(c.kl)) === JSON.stringify(plain(it.kl));
    });
    t.ok(same, 'the cache holds exactly the in-memory examples (batches cut by rows, not bytes)');
    t.throws(() => cache.pairs(), /holds KTO examples \(stage kto\), not preference pairs/);
  } finally {
    cache.close();
  }
});

t.test('preprocessing_batch_size sets the pairing batches, in memory and in the token cache (and the cache key)', async (t) => {
  const dir = join(root, 'small');
  require_dir(dir);
  writeFileSync(join(dir, 'fb.jsonl'), Array.from({ length: 5 }, (_, i) => JSON.stringify({ instruction: `q${i}`, output: `answer ${i}`, kto_tag: i % 2 === 0 })).join('\n') + '\n');
  const cfg = { ...cfgOf(join(dir, 'fb.jsonl'), dir, 64), feedbackBatchRows: 2 };
  const items = prepared(cfg);
  const text = (a: number[]) => tok.decode(Int32Array.from(a));
  // batches [0, 1] [2, 3] [4]: 0 takes 1's answer, 1 takes 0's, 4 its own
  t.same(items.map((it) => text(answer(it.kl)).match(/answer (\d)/)![1]), ['1', '0', '3', '2', '4']);
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const pack = packOptions(cfg);
  const keyOf = (rows?: number) => cacheKeyOf({ stage: 'kto', template: cfg.template, templateOptions: {}, specs, pack, maxSamples: null, modelDir: null, vocabSize: 256, feedbackBatchRows: rows });
  t.not(cacheDigest(keyOf(2)), cacheDigest(keyOf(1000)), 'the batch size is part of the cache key');
  t.equal(cacheDigest(keyOf(undefined)), cacheDigest(keyOf(1000)), 'unset: the default 1000');
  const key = keyOf(2);
  const out = join(root, 'cache-small');
  const req: BuildRequest = {
    dir: out + '.tmp', key, digest: cacheDigest(key), specs, pack, maxSamples: null, tokenDtype: tokenDtypeFor(256),
    opts: { stage: 'kto', template: cfg.template, cutoffLen: cfg.cutoffLen, templateOptions: {}, feedbackBatchRows: 2 }, tokenizer: { modelDir: null, vocabSize: 256 }, workers: 0,
  };
  await buildCache(req);
  publishCache(req.dir, out, false);
  const cache = TokenCache.open(out, { vocabSize: 256 });
  try {
    const src = cache.feedback();
    t.same(Array.from({ length: src.length }, (_, i) => Array.from(src.at(i)!.kl.tokens)), items.map((it) => Array.from(it.kl.tokens)), 'the cache pairs the same way');
  } finally {
    cache.close();
  }
});

t.test('bad tags and preference datasets are errors naming the field', async (t) => {
  const dir = join(root, 'bad');
  require_dir(dir);
  writeFileSync(join(dir, 'a.jsonl'), JSON.stringify({ instruction: 'q', output: 'a', kto_tag: true }) + '\n' + JSON.stringify({ instruction: 'q', output: 'a', kto_tag: 'yes' }) + '\n');
  t.throws(() => prepared(cfgOf(join(dir, 'a.jsonl'), dir)), /line 2.*kto_tag.*must be true or false, got "yes"/s);
  writeFileSync(join(dir, 'b.jsonl'), JSON.stringify({ instruction: 'q', output: 'a' }) + '\n');
  t.throws(() => prepared(cfgOf(join(dir, 'b.jsonl'), dir)), /kto_tag.*is missing/s);
  t.throws(() => prepared(cfgOf('dpo_en_demo', join(repo, 'examples/data'))), /preference \(ranking\) dataset; stage kto reads single answers/);
});

function require_dir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
}
