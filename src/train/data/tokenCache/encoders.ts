/**
 * Who encodes the row batches of a cache build: this thread (`inlineEncoder`, for tests and
 * `preprocessing_num_workers: 0`) or a pool of tokenizer threads (`threadEncoder`). Either way
 * the results reach `onBatch` in submission order, and at most `maxInFlight` batches are
 * outstanding, so memory stays bounded however fast the reader is. The first failure (a bad row,
 * in row order, or a crashed thread) stops the build. Must never deliver a batch twice or out of
 * order.
 */
import { Worker } from 'node:worker_threads';
import type { TextTokenizer } from '../../tokenizer/TextTokenizer.js';
import { encodeBatch, type EncodeContext, type EncodedBatch, type RowBatch } from './encodeBatch.js';
import { fromWireError, toWireError, type WireError } from './wireError.js';
import { workerUrl } from './workerUrl.js';

export interface Encoder {
  submit(b: RowBatch): Promise<void>;
  /** Waits until every submitted batch was delivered (throws the first failure). */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export function inlineEncoder(ctx: EncodeContext, onBatch: (e: EncodedBatch) => void): Encoder {
  return {
    submit: async (b) => onBatch(encodeBatch(b, ctx)),
    drain: async () => undefined,
    close: async () => undefined,
  };
}

/** What a tokenizer thread needs to rebuild the encode context (plain data). */
export interface TokenizerInit {
  specs: EncodeContext['specs'];
  opts: EncodeContext['opts'];
  pack: EncodeContext['pack'];
  tokenDtype: EncodeContext['tokenDtype'];
  tokenizer: { modelDir: string | null; vocabSize: number };
}

export type TokenizerReply = { id: number; ok: EncodedBatch } | { id: number; error: WireError };

export function threadEncoder(init: TokenizerInit, threads: number, onBatch: (e: EncodedBatch) => void): Encoder {
  const workers = Array.from({ length: threads }, () => new Worker(workerUrl('tokenizeWorker'), { workerData: init }));
  const maxInFlight = 2 * threads + 1;
  const done = new Map<number, TokenizerReply>();
  let submitted = 0;
  let delivered = 0;
  let failure: Error | null = null;
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const settle = () => new Promise<void>((r) => waiters.push(r));
  const fail = (e: Error) => {
    failure ??= e;
    wake();
  };
  const onReply = (m: TokenizerReply) => {
    done.set(m.id, m);
    while (failure === null && done.has(delivered)) {
      const r = done.get(delivered)!;
      done.delete(delivered);
      delivered++;
      if ('error' in r) fail(fromWireError(r.error));
      else {
        try {
          onBatch(r.ok);
        } catch (e) {
          fail(e instanceof Error ? e : new Error(String(e)));
        }
      }
    }
    wake();
  };
  for (const w of workers) {
    w.on('message', onReply);
    w.on('error', (e) => fail(e));
    w.on('exit', (code) => {
      if (code !== 0) fail(Object.assign(new Error(`a tokenizer thread exited with code ${code}`), { code: 'ERR_WORKER' }));
    });
  }
  return {
    async submit(b) {
      while (failure === null && submitted - delivered >= maxInFlight) await settle();
      if (failure) throw failure;
      workers[b.id % threads]!.postMessage(b, [b.bytes.buffer as ArrayBuffer, b.starts.buffer as ArrayBuffer]);
      submitted++;
    },
    async drain() {
      while (failure === null && delivered < submitted) await settle();
      if (failure) throw failure;
    },
    async close() {
      for (const w of workers) w.removeAllListeners('exit');
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

/** The body of a tokenizer thread, given its loaded tokenizer (tokenizeWorker.ts wires it). */
export function tokenizerReplies(init: TokenizerInit, tok: TextTokenizer): (b: RowBatch) => TokenizerReply {
  const ctx: EncodeContext = { specs: init.specs, tok, opts: init.opts, pack: init.pack, tokenDtype: init.tokenDtype };
  return (b) => {
    try {
      return { id: b.id, ok: encodeBatch(b, ctx) };
    } catch (e) {
      return { id: b.id, error: toWireError(e) };
    }
  };
}
