/**
 * The data plane of the training loop: datasets in LLaMA-Factory's formats to the micro-batches
 * the trainer feeds the model. Nothing here touches the engine, the network or the clock.
 *
 * How the training loop uses it (every rank runs the same calls and gets the same items):
 *
 *   const tok  = await loadTokenizer(modelDirOrNull, config.vocab_size);   // src/train/tokenizer
 *   const data = prepareData({ stage, dataset, datasetDir, template, cutoffLen, maxSamples, packing }, tok);
 *   // data.kind === 'sequences' (pt/sft): data.items: Sequence[]
 *   // data.kind === 'pairs'     (dpo):    data.items: PreferencePair[]
 *   const loader = new DataLoader(data.items, { seed, dp, dpRank });
 *   loader.restore(checkpoint.trainer_state.data_cursor);     // when resuming
 *   totalSteps = ceil(num_train_epochs * loader.stepsPerEpoch / gradient_accumulation_steps)
 *   for each micro-batch: const { item } = loader.next();
 *     const shard = shardForSequenceParallel(item, sp, spRank, tok.padId);   // pairs: each side
 *     normalizer = validTokenCount(all micro-batches of the optimizer step, all DP replicas)
 *     model.forward({ tokens: shard.tokens, labels: shard.labels, positions: shard.positions,
 *                     docLens: shard.docLens }, normalizer)   // docLens: global, negative = padding
 *   checkpoint: trainer_state.data_cursor = loader.cursor   // {epoch, index}
 *
 * Contracts:
 * - `Sequence.labels` are already shifted on the whole sequence: labels[t] is the target of
 *   position t (the next token of the same document) or -100. Never shift after sharding.
 * - Positions restart at 0 for each packed document; `docLens` lists the documents (sum = length).
 * - Sharding pads to a multiple of sp with `padId` / label -100 and appends the padding to docLens
 *   as a negative length (what the engine's attention expects).
 * - The default job's task: `recallTask({seed, n, seqLen})` yields byte-vocab SFT samples;
 *   `buildSequences(samples, {cutoffLen: seqLen, packing: false, overflow: 'truncate'})` makes the
 *   items; `scoreRecall(seq, argmaxPerPosition)` counts exact answers (chance: `recallChance`).
 * - Errors in the data are `DataError` (code ERR_DATA) naming file, row, byte offset and field.
 * - Training jobs do not call prepareData: `prepareTokenCache(job, party)` (tokenCache/) builds the
 *   same items once into a mapped on-disk cache (worker threads, bounded memory) and every rank
 *   reads them through `cache.sequences()` / `cache.pairs()` (ItemSource: length + at(i)).
 */
export { DataError, type DataErrorWhere } from './DataError.js';
export { resolveDatasets, type DatasetSpec } from './datasetInfo.js';
export { readRows, streamRows, fileKind, type Row, type FileKind } from './readRows.js';
export { rawRows, readChunks } from './rows/fileRows.js';
export { decodeRow } from './rows/decodeRow.js';
export { LineSplitter, isBlankLine } from './rows/LineSplitter.js';
export { JsonArraySplitter } from './rows/JsonArraySplitter.js';
export { MAX_ROW_BYTES, type RawRow } from './rows/RawRow.js';
export { toExamples, toExample, detectFormat, type RowFormat, type Example, type Stage, type SftExample, type TextExample, type PairExample, type TokensExample } from './formats.js';
export { TEMPLATES, IGNORE_INDEX, encodeSft, encodePair, encodeTurns, inferSeqLen, type TemplateName, type TemplateOptions, type SftOptions, type TokenizedSample, type TokenizedPair } from './templates.js';
export { buildSequences, sequenceFromDocs, preferencePair, type Sequence, type PreferencePair, type PreferenceSequence, type PackOptions } from './sequences.js';
export { shardForSequenceParallel, padSequence, validTokenCount, type Shard } from './shard.js';
export { DataLoader, type DataCursor, type DataLoaderOptions } from './DataLoader.js';
export { createRng, randomBelow, epochPermutation } from './rng.js';
export { prepareData, tokenizeExample, packOptions, type DataConfig, type PreparedData, type DataStats } from './prepareData.js';
export { encodeExample, type EncodedSample, type EncodeOptions } from './encodeExample.js';
export { Packer } from './Packer.js';
export { appendAll } from './appendAll.js';
export type { ItemSource } from './ItemSource.js';
export * from './tokenCache/index.js';
export { recallTask, scoreRecall, addScores, recallChance, type RecallOptions, type RecallExample, type RecallScore } from './recallTask.js';
