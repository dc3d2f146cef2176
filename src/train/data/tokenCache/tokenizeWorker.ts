/**
 * Entry of a tokenizer thread of a cache build (started by encoders.ts, never run by hand): loads
 * the tokenizer once, then answers each row batch with its encoded arrays (transferred, not
 * copied) or the error of its first bad row. Must never write files or touch other threads' data.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../../tokenizer/index.js';
import { transferList, type RowBatch } from './encodeBatch.js';
import { tokenizerReplies, type TokenizerInit } from './encoders.js';

const init: TokenizerInit = workerData;
const port = parentPort!;
const reply = tokenizerReplies(init, await loadTokenizer(init.tokenizer.modelDir, init.tokenizer.vocabSize));
port.on('message', (b: RowBatch) => {
  const r = reply(b);
  port.postMessage(r, 'ok' in r ? transferList(r.ok) : []);
});
