/**
 * `bench data [--rows N] [--workers N] [--train] [--keep]`: data at scale. Writes a JSONL
 * pre-training dataset of N rows (default 2,000,000, about 500 bytes each: ~1 GB) to a temporary
 * directory, then prepares its token cache twice, each time in a fresh process
 * (bench/dataPrepare.ts) as rank 0 of a job would: the first run builds it, the second finds it
 * by digest and maps it. Figures: MB/s of the build, peak RSS of the preparing process (bounded:
 * it must not grow with the dataset), the longest stall of its main thread (heartbeats are sent
 * from there), and the time the cache saves the second job. `--train` then runs a short `up`
 * (tiny model, 2 sequence-parallel ranks, max_steps 2) on the same output_dir, which reuses the
 * cache. Removes the directory unless --keep. Prints figures, never asserts on them.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TokenCacheJob } from '../src/train/data/index.js';
import { resolveModelDir } from '../src/train/trainWorkload.js';
import { cliEntry } from '../src/util/packageRoot.js';
import type { Benchmark } from './types.js';

const prepareScript = fileURLToPath(new URL('./dataPrepare.js', import.meta.url));
const WORDS = 'the of and to in is was for on that with as by at from his her an which or be are this had not but were they all one have there their been has more when who will would its no if out so said what up about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ');

/** Writes `rows` rows of ~500 bytes of pseudo-random words (a fixed LCG: the same file every run). */
async function writeDataset(file: string, rows: number): Promise<number> {
  const out = createWriteStream(file);
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  let chunk = '';
  for (let r = 0; r < rows; r++) {
    let text = `row ${r}:`;
    while (text.length < 480) text += ' ' + WORDS[next() % WORDS.length];
    chunk += JSON.stringify({ text }) + '\n';
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      chunk = '';
    }
  }
  out.write(chunk);
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return statSync(file).size;
}

interface PrepareRun {
  seconds: number;
  built: boolean;
  items: number;
  tokens: number;
  rows: number;
  stallMs: number;
  peakRssBytes: number;
  wallSeconds: number;
}

function runNode(args: string[], log: (l: string) => void, capture: boolean): Promise<{ code: number | null; stdout: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let stdout = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, seconds: (performance.now() - t0) / 1e3 }));
    if (!capture) log(`running: node ${args.map((a) => (a.length > 80 ? a.slice(0, 77) + '...' : a)).join(' ')}`);
  });
}

async function prepare(job: TokenCacheJob, log: (l: string) => void): Promise<PrepareRun> {
  const r = await runNode([prepareScript, JSON.stringify(job)], log, true);
  if (r.code !== 0) throw new Error(`the preparing process exited with ${r.code}`);
  return { ...(JSON.parse(r.stdout.trim().split('\n').pop()!) as Omit<PrepareRun, 'wallSeconds'>), wallSeconds: r.seconds };
}

const mb = (b: number) => b / 1e6;

export const dataBench: Benchmark = {
  options: {
    rows: { type: 'string', default: '2000000' },
    workers: { type: 'string' },
    train: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
  async run(opts, log) {
    const rows = Number(opts.rows);
    if (!Number.isSafeInteger(rows) || rows < 1) throw new Error(`--rows must be a positive integer, got ${String(opts.rows)}`);
    const workers = opts.workers === undefined ? null : Number(opts.workers);
    if (workers !== null && (!Number.isSafeInteger(workers) || workers < 0)) throw new Error(`--workers must be a non-negative integer, got ${String(opts.workers)}`);
    const dir = mkdtempSync(join(tmpdir(), 'ua-bench-data-'));
    try {
      const t0 = performance.now();
      const bytes = await writeDataset(join(dir, 'docs.jsonl'), rows);
      log(`dataset: ${rows} rows, ${mb(bytes).toFixed(0)} MB written in ${((performance.now() - t0) / 1e3).toFixed(1)} s (${dir})`);
      const modelDir = resolveModelDir('tiny');
      const cutoffLen = 1024;
      const job: TokenCacheJob = {
        stage: 'pt', dataset: ['docs.jsonl'], datasetDir: dir, template: 'default', cutoffLen, maxSamples: null, packing: true,
        outputDir: join(dir, 'out'), tokenizedPath: null, overwriteCache: false, workers, modelDir, vocabSize: 256,
      };
      const first = await prepare(job, log);
      log(`build: ${first.seconds.toFixed(1)} s (${(mb(bytes) / first.seconds).toFixed(1)} MB/s), ${first.rows} rows -> ${first.items} sequences of ${cutoffLen}, ${first.tokens} tokens; peak RSS ${mb(first.peakRssBytes).toFixed(0)} MB; longest main-thread stall ${first.stallMs.toFixed(0)} ms`);
      const second = await prepare(job, log);
      log(`reuse: ${second.seconds.toFixed(2)} s (built: ${second.built}); peak RSS ${mb(second.peakRssBytes).toFixed(0)} MB; saved ${(first.seconds - second.seconds).toFixed(1)} s`);
      let train: { exitCode: number | null; seconds: number } | null = null;
      if (opts.train === true) {
        const cfg = join(dir, 'job.yaml');
        writeFileSync(cfg, [
          'model_name_or_path: tiny', 'stage: pt', 'finetuning_type: full', 'dataset: docs.jsonl', `dataset_dir: ${dir}`, `cutoff_len: ${cutoffLen}`,
          'sequence_parallel_size: 2', 'max_steps: 2', 'logging_steps: 1', 'save_steps: 1000', `output_dir: ${join(dir, 'out')}`, '',
        ].join('\n'));
        const r = await runNode([cliEntry(), 'up', cfg], log, false);
        train = { exitCode: r.code, seconds: r.seconds };
        log(`train: up exited ${r.code} after ${r.seconds.toFixed(1)} s (2 ranks, max_steps 2, the cache reused)`);
      }
      return {
        bench: 'data', rows, datasetBytes: bytes, workers,
        build: { seconds: first.seconds, mbPerSecond: mb(bytes) / first.seconds, peakRssBytes: first.peakRssBytes, stallMs: first.stallMs, sequences: first.items, tokens: first.tokens },
        reuse: { seconds: second.seconds, built: second.built, peakRssBytes: second.peakRssBytes, savedSeconds: first.seconds - second.seconds },
        train,
      };
    } finally {
      if (opts.keep !== true) rmSync(dir, { recursive: true, force: true });
      else log(`kept ${dir}`);
    }
  },
};
