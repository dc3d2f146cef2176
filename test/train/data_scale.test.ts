// Data at scale, made cheap: more rows than V8 accepts as call arguments (the ~125,000-row
// `push(...rows)` crash), in JSONL and in one JSON array, in memory and through the token cache
// built on worker threads; a 50 MB line is read off the main thread (whose event loop keeps
// ticking) and its error names the file, the line and the byte offset.
import t from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '../../src/train/tokenizer/index.js';
import { LEAF_BY_PATH } from '../../src/config/schema.js';
import {
  buildTokenCache, cacheDigest, cacheKeyOf, packOptions, prepareData, resolveDatasets, TokenCache, tokenDtypeFor,
  type BuildRequest, type DataConfig, type Sequence,
} from '../../src/train/data/index.js';

const root = mkdtempSync(join(tmpdir(), 'ua-scale-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const tok = new ByteTokenizer(256);
const ROWS = 150_000;

/** Largest gap between ticks of a 10 ms timer while `work` runs (what a heartbeat timer would see). */
async function maxStall<T>(work: () => Promise<T>): Promise<{ value: T | undefined; error: unknown; stallMs: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 10);
  try {
    return { value: await work(), error: undefined, stallMs: worst };
  } catch (error) {
    return { value: undefined, error, stallMs: Math.max(worst, performance.now() - last) };
  } finally {
    clearInterval(timer);
  }
}

function request(cfg: DataConfig, dir: string, workers: number): BuildRequest {
  const specs = resolveDatasets(cfg.dataset, cfg.datasetDir);
  const pack = packOptions(cfg);
  const key = cacheKeyOf({ stage: cfg.stage, template: cfg.template, specs, pack, maxSamples: null, modelDir: null, vocabSize: 256 });
  return {
    dir, key, digest: cacheDigest(key), specs, pack, maxSamples: null, tokenDtype: tokenDtypeFor(256),
    opts: { stage: cfg.stage, template: cfg.template, cutoffLen: cfg.cutoffLen }, tokenizer: { modelDir: null, vocabSize: 256 }, workers,
  };
}

// the heartbeat window of a default job: a rank is declared dead after this much silence
const heartbeatWindowMs = 1000 * Number(LEAF_BY_PATH.get('cluster.heartbeat_interval_s')!.default) * Number(LEAF_BY_PATH.get('cluster.heartbeat_miss_limit')!.default);

t.test(`${ROWS} rows (more than a call takes as arguments): JSONL in memory, the same rows as one JSON array through the worker-built cache`, async (t) => {
  const rows = Array.from({ length: ROWS }, (_, i) => JSON.stringify({ text: `d${i % 97}` }));
  writeFileSync(join(root, 'many.jsonl'), rows.join('\n') + '\n');
  writeFileSync(join(root, 'many.json'), '[\n' + rows.join(',\n') + '\n]\n');
  const cfg: DataConfig = { stage: 'pt', dataset: ['many.jsonl'], datasetDir: root, template: 'default', cutoffLen: 512 };
  const mem = prepareData(cfg, tok);
  t.equal(mem.stats.examples, ROWS, `prepareData reads all ${ROWS} JSONL rows`);

  const dir = join(root, 'cache-many');
  const run = await maxStall(() => buildTokenCache(request({ ...cfg, dataset: ['many.json'] }, dir, 1), { replace: false }));
  t.equal(run.error, undefined, 'the build succeeds');
  t.ok(run.stallMs < heartbeatWindowMs, `the main thread's longest stall while the threads prepared ${ROWS} rows: ${run.stallMs.toFixed(0)} ms (heartbeat window ${heartbeatWindowMs} ms)`);
  const cache = TokenCache.open(dir, { vocabSize: 256 });
  t.teardown(() => cache.close());
  t.same(cache.meta.stats.examples, ROWS);
  t.same({ ...cache.meta.stats, datasets: [] }, { ...mem.stats, datasets: [] }, 'the cache has the in-memory stats');
  const src = cache.sequences();
  t.equal(src.length, mem.items.length);
  for (const i of [0, 1, Math.floor(src.length / 2), src.length - 1]) {
    const a = src.at(i)!;
    const b = (mem.items as Sequence[])[i]!;
    t.same([Array.from(a.tokens), Array.from(a.labels), Array.from(a.docLens)], [Array.from(b.tokens), Array.from(b.labels), Array.from(b.docLens)], `sequence ${i} is identical`);
  }
  t.same(readdirSync(root).filter((n) => n.includes('.tmp-')), [], 'no temporary build directory is left');
});

t.test('a 50 MB line is parsed off the main thread; its error names file, line and byte offset', async (t) => {
  const file = join(root, 'huge.jsonl');
  const first = JSON.stringify({ text: 'fine' }) + '\n';
  const fd = openSync(file, 'w');
  writeSync(fd, first);
  writeSync(fd, '{"text": "');
  writeSync(fd, Buffer.alloc(50 * 2 ** 20, 'a'));
  writeSync(fd, '"\n'); // the object is never closed
  closeSync(fd);
  const cfg: DataConfig = { stage: 'pt', dataset: ['huge.jsonl'], datasetDir: root, template: 'default', cutoffLen: 512 };
  const dir = join(root, 'cache-huge');
  // tokenized on the preparing thread itself (workers 0): still off the main thread
  const run = await maxStall(() => buildTokenCache(request(cfg, dir, 0), { replace: false }));
  t.match(run.error, { code: 'ERR_DATA', row: 2, offset: first.length, message: /huge\.jsonl, line 2, byte \d+: invalid JSON/ }, (run.error as Error)?.message?.slice(0, 200));
  t.ok(run.stallMs < heartbeatWindowMs, `the main thread's longest stall: ${run.stallMs.toFixed(0)} ms (heartbeat window ${heartbeatWindowMs} ms)`);
  t.same(readdirSync(root).filter((n) => n.startsWith('cache-huge')), [], 'nothing is published and the temporary directory is removed');
});
