// The token cache gives exactly the items prepareData gives (every example dataset and stage,
// random pre-tokenized documents with explicit labels under every packing mode), reuses or
// rebuilds per its key, and refuses damaged or foreign directories naming the file.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '../../src/train/tokenizer/index.js';
import {
  buildCache, cacheDigest, cacheKeyOf, packOptions, prepareData, publishCache, resolveDatasets, TokenCache, tokenDtypeFor,
  type BuildRequest, type DataConfig, type PreferencePair, type Sequence,
} from '../../src/train/data/index.js';

const root = mkdtempSync(join(tmpdir(), 'ua-cache-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const tok = new ByteTokenizer(256);
let n = 0;

/** Builds the cache of a DataConfig on this thread (the same code the preparing thread runs). */
async function cacheOf(cfg: DataConfig, vocabSize = 256, batchBytes?: number): Promise<TokenCache> {
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const pack = packOptions(cfg);
  const key = cacheKeyOf({ stage: cfg.stage, template: cfg.template, templateOptions: cfg.templateOptions ?? {}, specs, pack, maxSamples: cfg.maxSamples ?? null, modelDir: null, vocabSize });
  const digest = cacheDigest(key);
  const dir = join(root, `c${n++}`);
  const req: BuildRequest = {
    dir: dir + '.tmp', key, digest, specs, pack, maxSamples: cfg.maxSamples ?? null, tokenDtype: tokenDtypeFor(vocabSize),
    opts: { stage: cfg.stage, template: cfg.template, cutoffLen: cfg.cutoffLen, templateOptions: cfg.templateOptions ?? {} }, tokenizer: { modelDir: null, vocabSize }, workers: 0, batchBytes,
  };
  await buildCache(req);
  publishCache(req.dir, dir, false);
  return TokenCache.open(dir, { vocabSize });
}

function plainSeq(s: Sequence) {
  return { tokens: Array.from(s.tokens), labels: Array.from(s.labels), positions: Array.from(s.positions), docLens: Array.from(s.docLens) };
}

async function sameAsPrepareData(t: Test, cfg: DataConfig, label: string, batchBytes?: number): Promise<void> {
  const mem = prepareData(cfg, tok);
  const cache = await cacheOf(cfg, 256, batchBytes);
  try {
    t.same(cache.meta.stats, mem.stats, `${label}: the same stats`);
    if (mem.kind === 'pairs') {
      const src = cache.pairs();
      t.equal(src.length, mem.items.length, `${label}: ${src.length} pairs`);
      const got = Array.from({ length: src.length }, (_, i) => src.at(i)!);
      const side = (p: PreferencePair['chosen']) => ({ ...plainSeq(p), promptLen: p.promptLen });
      t.same(got.map((p) => [side(p.chosen), side(p.rejected)]), mem.items.map((p) => [side(p.chosen), side(p.rejected)]), `${label}: identical pairs`);
    } else {
      const src = cache.sequences();
      t.equal(src.length, mem.items.length, `${label}: ${src.length} sequences`);
      const got = Array.from({ length: src.length }, (_, i) => plainSeq(src.at(i)!));
      t.same(got, mem.items.map(plainSeq), `${label}: identical sequences`);
      t.equal(src.at(src.length), undefined, 'past the end: undefined');
    }
  } finally {
    cache.close();
  }
}

t.test('every example dataset: the cache holds what prepareData builds', async (t) => {
  const dir = 'examples/data';
  for (const name of ['identity', 'alpaca_en_demo', 'sharegpt_demo', 'messages_demo', 'pretokenized_demo']) {
    await sameAsPrepareData(t, { stage: 'sft', dataset: [name], datasetDir: dir, template: 'llama3', cutoffLen: 256 }, `sft ${name}`);
  }
  await sameAsPrepareData(t, { stage: 'sft', dataset: ['alpaca_en_demo'], datasetDir: dir, template: 'qwen', cutoffLen: 128, packing: true }, 'sft packed');
  for (const name of ['dpo_en_demo', 'dpo_alpaca_demo']) {
    await sameAsPrepareData(t, { stage: 'dpo', dataset: [name], datasetDir: dir, template: 'qwen', cutoffLen: 200 }, `dpo ${name}`);
  }
  for (const name of ['tiny_corpus', 'pt_text_demo']) {
    await sameAsPrepareData(t, { stage: 'pt', dataset: [name], datasetDir: dir, template: 'default', cutoffLen: 96 }, `pt ${name}`, 4096);
  }
  await sameAsPrepareData(t, { stage: 'pt', dataset: ['tiny_corpus'], datasetDir: dir, template: 'default', cutoffLen: 96, packing: false }, 'pt unpacked (split)');
  await sameAsPrepareData(t, { stage: 'sft', dataset: ['identity', 'alpaca_en_demo'], datasetDir: dir, template: 'default', cutoffLen: 512, maxSamples: 3 }, 'two datasets, max_samples 3');
});

t.test('template and masking options reach the cache and its key', async (t) => {
  const dir = 'examples/data';
  const base: DataConfig = { stage: 'sft', dataset: ['sharegpt_demo'], datasetDir: dir, template: 'qwen3', cutoffLen: 256 };
  const opts = { trainOnPrompt: true, maskHistory: true, defaultSystem: 'Be brief.', enableThinking: false };
  await sameAsPrepareData(t, { ...base, templateOptions: opts }, 'sft with train_on_prompt, mask_history, default_system, enable_thinking off');
  const specs = resolveDatasets(base.dataset, dir);
  const digestOf = (templateOptions: object) => cacheDigest(cacheKeyOf({ stage: 'sft', template: 'qwen3', templateOptions, specs, pack: packOptions(base), maxSamples: null, modelDir: null, vocabSize: 256 }));
  t.not(digestOf(opts), digestOf({}), 'options change the key');
  t.equal(digestOf({}), digestOf({ trainOnPrompt: undefined }), 'an absent option is the same key as an unset one');
});

t.test('random pre-tokenized documents, explicit labels, every packing mode: identical to buildSequences', async (t) => {
  const doc = fc.record({
    ids: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 40 }),
    labelKind: fc.constantFrom('none', 'same', 'mixed'),
    seed: fc.integer({ min: 0, max: 1000 }),
  });
  let cases = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(doc, { minLength: 1, maxLength: 12 }), fc.integer({ min: 2, max: 24 }), fc.boolean(), fc.boolean(), async (docs, cutoff, packing, asPt) => {
      const d = join(root, `fc${cases++}`);
      mkdirSync(d);
      const rows = docs.map(({ ids, labelKind, seed }) => {
        if (labelKind === 'none') return { input_ids: ids };
        const labels = ids.map((x, i) => (labelKind === 'same' ? x : (seed + i) % 3 === 0 ? -100 : (seed + i) % 3 === 1 ? x : (x + 7) % 256));
        return { input_ids: ids, labels };
      });
      writeFileSync(join(d, 'p.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      // pre-tokenized rows are cut at cutoff_len by the encoder; 'split' needs pt (long documents kept)
      const cfg: DataConfig = { stage: asPt ? 'pt' : 'sft', dataset: ['p.jsonl'], datasetDir: d, template: 'default', cutoffLen: cutoff, packing };
      const mem = prepareData(cfg, tok);
      const cache = await cacheOf(cfg, 256, 64);
      try {
        const src = cache.sequences();
        const got = Array.from({ length: src.length }, (_, i) => plainSeq(src.at(i)!));
        if (JSON.stringify(got) !== JSON.stringify((mem.items as Sequence[]).map(plainSeq))) return false;
        return JSON.stringify(cache.meta.stats) === JSON.stringify(mem.stats);
      } finally {
        cache.close();
      }
    }),
    { numRuns: 60, seed: 14 },
  );
  t.pass(`${cases} random datasets agree (tokens, shifted labels, positions, document pieces, stats)`);
});

t.test('a damaged cache is refused naming the file', async (t) => {
  const cfg: DataConfig = { stage: 'pt', dataset: ['tiny_corpus'], datasetDir: 'examples/data', template: 'default', cutoffLen: 64 };
  const cache = await cacheOf(cfg);
  const dir = cache.dir;
  cache.close();
  const tokens = join(dir, 'tokens.bin');
  const size = readFileSync(tokens).length;
  truncateSync(tokens, size - 3);
  t.throws(() => TokenCache.open(dir, { vocabSize: 256 }), { code: 'ERR_DATA', message: /tokens\.bin.*holds \d+ bytes.*damaged/ });
  const meta = join(dir, 'meta.json');
  writeFileSync(meta, JSON.stringify({ ...JSON.parse(readFileSync(meta, 'utf8')), version: 999 }));
  t.throws(() => TokenCache.open(dir, { vocabSize: 256 }), { code: 'ERR_DATA', message: /meta\.json, field 'version'/ });
  writeFileSync(meta, '{nope');
  t.throws(() => TokenCache.open(dir, { vocabSize: 256 }), { code: 'ERR_DATA', message: /meta\.json.*invalid JSON/ });
  t.throws(() => TokenCache.open(join(root, 'nothing-here'), { vocabSize: 256 }), { code: 'ERR_DATA', message: /no token cache here/ });
});

t.test('token ids are checked against the model vocabulary when read', async (t) => {
  const cfg: DataConfig = { stage: 'pt', dataset: ['tiny_corpus'], datasetDir: 'examples/data', template: 'default', cutoffLen: 64 };
  const cache = await cacheOf(cfg);
  const dir = cache.dir;
  cache.close();
  const small = TokenCache.open(dir, { vocabSize: 100 });
  t.throws(() => small.sequences().at(0), { code: 'ERR_DATA', message: /tokens\.bin: token id \d+ at stream position \d+ does not fit vocab_size 100/ });
  small.close();
  t.ok(readdirSync(dir).includes('meta.json'), 'the cache itself is left as it was');
});
