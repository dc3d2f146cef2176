/**
 * Builds one token cache into a directory: streams every dataset's rows (max_samples per
 * dataset), decides each dataset's row format from its first row, sends rows in batches of about
 * 1 MiB to the encoder (tokenizer threads; KTO: exactly preprocessing_batch_size rows, the batches its
 * KL pairing runs within) and writes the encoded batches in row order. Memory is
 * bounded by the batches in flight, never by the data. Runs on the preparing worker thread
 * (prepareWorker.ts) or, for tests, on the calling thread with the inline encoder. It must never
 * publish the directory (the caller renames it into place) nor leave a file open on failure.
 */
import { availableParallelism } from 'node:os';
import { loadTokenizer } from '../../tokenizer/index.js';
import type { DatasetSpec } from '../datasetInfo.js';
import { DataError } from '../DataError.js';
import type { EncodeOptions } from '../encodeExample.js';
import { FEEDBACK_BATCH_ROWS } from '../feedback.js';
import { detectFormat, type RowFormat } from '../formats.js';
import type { DataStats } from '../prepareData.js';
import { decodeRow } from '../rows/decodeRow.js';
import { fileKind, rawRows } from '../rows/fileRows.js';
import type { RawRow } from '../rows/RawRow.js';
import type { PackOptions } from '../sequences.js';
import { cacheKindOf, type CacheKey, type CacheMeta, type TokenDtype } from './cacheLayout.js';
import { CacheWriter } from './CacheWriter.js';
import { packRows } from './encodeBatch.js';
import { inlineEncoder, threadEncoder, type Encoder, type TokenizerInit } from './encoders.js';

export interface BuildRequest {
  /** where to write (a fresh directory the caller publishes) */
  dir: string;
  key: CacheKey;
  digest: string;
  specs: DatasetSpec[];
  opts: EncodeOptions;
  pack: PackOptions;
  maxSamples: number | null;
  tokenDtype: TokenDtype;
  tokenizer: { modelDir: string | null; vocabSize: number };
  /** tokenizer threads; 0 encodes on the building thread */
  workers: number;
  /** rows per batch are cut at about this many bytes (default 1 MiB) */
  batchBytes?: number;
}

export interface BuildProgress {
  rows: number;
  bytes: number;
  seconds: number;
}

const BATCH_BYTES = 2 ** 20;
const BATCH_ROWS = 16384;

/** Tokenizer threads when the job does not say: every core but the one that reads and writes. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

export async function buildCache(req: BuildRequest, onProgress?: (p: BuildProgress) => void): Promise<CacheMeta> {
  const t0 = performance.now();
  const writer = new CacheWriter(req.dir, cacheKindOf(req.opts.stage), req.tokenDtype, req.pack);
  // KTO batches are cut by rows only: their size decides which answers the KL sequences borrow
  const kto = req.opts.stage === 'kto';
  const batchRows = kto ? req.opts.feedbackBatchRows ?? FEEDBACK_BATCH_ROWS : BATCH_ROWS;
  let encoder: Encoder | null = null;
  try {
    if (req.workers > 0) {
      const init: TokenizerInit = { specs: req.specs, opts: req.opts, pack: req.pack, tokenDtype: req.tokenDtype, tokenizer: req.tokenizer };
      encoder = threadEncoder(init, req.workers, (b) => writer.add(b));
    } else {
      const tok = await loadTokenizer(req.tokenizer.modelDir, req.tokenizer.vocabSize);
      encoder = inlineEncoder({ specs: req.specs, tok, opts: req.opts, pack: req.pack, tokenDtype: req.tokenDtype }, (b) => writer.add(b));
    }
    const datasets: DataStats['datasets'] = [];
    const batchBytes = kto ? Infinity : req.batchBytes ?? BATCH_BYTES;
    let id = 0;
    let rowsDone = 0;
    let bytesDone = 0;
    let lastReport = t0;
    for (const [d, spec] of req.specs.entries()) {
      const kind = fileKind(spec.file);
      let format: RowFormat | null = null;
      let pending: RawRow[] = [];
      let pendingBytes = 0;
      let n = 0;
      const flush = async () => {
        if (pending.length === 0) return;
        const batch = packRows(id++, d, kind, format!, pending);
        pending = [];
        pendingBytes = 0;
        await encoder!.submit(batch);
      };
      if (req.maxSamples === null || req.maxSamples > 0) {
        for (const raw of rawRows(spec.file, kind)) {
          // one row decides the dataset's format (its errors name that row)
          format ??= detectFormat(decodeRow(raw, kind, spec.file), spec, req.opts.stage);
          pending.push(raw);
          pendingBytes += raw.bytes.length;
          n++;
          bytesDone += raw.bytes.length;
          if (pendingBytes >= batchBytes || pending.length >= batchRows) await flush();
          if (onProgress && performance.now() - lastReport > 2000) {
            lastReport = performance.now();
            onProgress({ rows: rowsDone + n, bytes: bytesDone, seconds: (lastReport - t0) / 1e3 });
          }
          if (req.maxSamples !== null && n >= req.maxSamples) break;
        }
      }
      await flush();
      rowsDone += n;
      datasets.push({ name: spec.name, file: spec.file, examples: n });
    }
    await encoder.drain();
    if (rowsDone === 0) throw new DataError(`the datasets ${req.specs.map((s) => s.name).join(', ')} hold no rows`, { field: 'dataset' });
    onProgress?.({ rows: rowsDone, bytes: bytesDone, seconds: (performance.now() - t0) / 1e3 });
    return writer.finish({ key: req.key, digest: req.digest, stats: { datasets, examples: rowsDone } });
  } finally {
    writer.close();
    await encoder?.close();
  }
}
