// A job's token cache: built once, reused by the next job on the same data (and rebuilt when a
// dataset file changes or overwrite_cache is set), tokenized_path loaded as it is, foreign
// directories refused, two ranks through the rendezvous store (rank 1 maps what rank 0 built),
// and the config keys: streaming: true is refused naming the key.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readdirSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '../../src/engine/stores.js';
import { loadJobConfig } from '../../src/config/index.js';
import { prepareTokenCache, type CacheParty, type TokenCacheJob } from '../../src/train/data/index.js';

const root = mkdtempSync(join(tmpdir(), 'ua-prepcache-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const data = join(root, 'data');
mkdirSync(data);
writeFileSync(join(data, 'docs.jsonl'), Array.from({ length: 300 }, (_, i) => JSON.stringify({ text: `document ${i} ${'x'.repeat(i % 50)}` })).join('\n') + '\n');

const job = (o: Partial<TokenCacheJob> = {}): TokenCacheJob => ({
  stage: 'pt', dataset: ['docs.jsonl'], datasetDir: data, template: 'default', cutoffLen: 128, maxSamples: null, packing: true,
  outputDir: join(root, 'out'), tokenizedPath: null, overwriteCache: false, workers: 0, modelDir: null, vocabSize: 256, ...o,
});
function party(rank = 0, world = 1, store = new MemoryStore()): CacheParty & { notes: string[] } {
  const notes: string[] = [];
  return { rank, world, store, info: (m) => notes.push(m), warn: (m) => notes.push(`warn: ${m}`), notes };
}

t.test('built once, then reused; a changed file or overwrite_cache rebuilds', async (t) => {
  const first = await prepareTokenCache(job(), party());
  t.ok(first.built, 'the first job builds');
  const n = first.cache.sequences().length;
  first.cache.close();
  const p = party();
  const second = await prepareTokenCache(job(), p);
  t.notOk(second.built, 'the second job on the same data reuses it');
  t.equal(second.cache.sequences().length, n);
  t.match(p.notes.join('\n'), /reusing it \(300 rows/);
  second.cache.close();
  t.ok(first.seconds >= 0 && second.seconds >= 0, `build ${first.seconds.toFixed(2)} s, reuse ${second.seconds.toFixed(2)} s`);
  const forced = await prepareTokenCache(job({ overwriteCache: true }), party());
  t.ok(forced.built, 'overwrite_cache rebuilds');
  forced.cache.close();
  appendFileSync(join(data, 'docs.jsonl'), JSON.stringify({ text: 'one more' }) + '\n');
  const changed = await prepareTokenCache(job(), party());
  t.ok(changed.built, 'a dataset file that changed gives another digest, so a new cache');
  t.equal(changed.cache.meta.stats.examples, 301);
  changed.cache.close();
  t.equal(readdirSync(join(root, 'out', 'token_cache')).length, 2, 'one directory per digest');
});

t.test('tokenized_path: built there when empty, then loaded as it is (other data keys warned about)', async (t) => {
  const dir = join(root, 'saved');
  const a = await prepareTokenCache(job({ tokenizedPath: dir }), party());
  t.ok(a.built);
  a.cache.close();
  const p = party();
  const b = await prepareTokenCache(job({ tokenizedPath: dir, cutoffLen: 64 }), p);
  t.notOk(b.built, 'a saved tokenized_path is loaded, not rebuilt');
  t.match(p.notes.join('\n'), /warn: tokenized_path .*loading the saved token cache as it is, although it was built with other .*cutoff/);
  b.cache.close();
  await t.rejects(prepareTokenCache(job({ tokenizedPath: dir, stage: 'dpo' }), party()), { code: 'ERR_DATA', message: /saved.*holds sequences \(stage pt or sft\), but this job's stage is dpo/ });
  const foreign = join(root, 'arrow');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'dataset_info.json'), '{}');
  await t.rejects(prepareTokenCache(job({ tokenizedPath: foreign }), party()), { code: 'ERR_DATA', message: /arrow, field 'tokenized_path': holds files that are not a token cache of this program \(dataset_info\.json\)/ });
});

t.test('two ranks: rank 0 builds and publishes, rank 1 waits and maps the same directory', async (t) => {
  const store = new MemoryStore();
  const out = join(root, 'out2');
  const [r0, r1] = await Promise.all([prepareTokenCache(job({ outputDir: out }), party(0, 2, store)), prepareTokenCache(job({ outputDir: out }), party(1, 2, store))]);
  t.ok(r0.built, 'rank 0 built it');
  t.notOk(r1.built, 'rank 1 did not');
  t.equal(r1.cache.dir, r0.cache.dir);
  t.same(Array.from(r1.cache.sequences().at(3)!.tokens), Array.from(r0.cache.sequences().at(3)!.tokens));
  r0.cache.close();
  r1.cache.close();
});

t.test('config: the cache keys are schema keys; streaming: true is refused naming the key', async (t) => {
  const load = (extra: string) => loadJobConfig({ configPath: 'job.yaml', configText: `dataset: docs.jsonl\n${extra}`, env: {} });
  const c = load('tokenized_path: /tmp/x\noverwrite_cache: true\npreprocessing_num_workers: 3\nstreaming: false\n').config;
  t.same([c.tokenized_path, c.overwrite_cache, c.preprocessing_num_workers], ['/tmp/x', true, 3], 'streaming: false is accepted');
  t.throws(() => load('streaming: true\n'), { name: 'ConfigError', message: /job\.yaml:2: streaming: is not supported here: rows are always read as a stream into the token cache/ });
});
