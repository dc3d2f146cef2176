/**
 * Writes one token cache directory (cacheLayout.ts) from encoded batches taken in row order:
 * appends their arrays, records document offsets, closes sequences with the Packer (pt/sft) and
 * keeps the stats; `finish` flushes and fsyncs every file, then writes meta.json last. Memory is
 * the writers' buffers, whatever the data size. Synchronous (a worker thread runs it); it must
 * never write outside its directory or a meta.json for a cache it did not finish.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DataStats } from '../prepareData.js';
import { Packer } from '../Packer.js';
import type { PackOptions } from '../sequences.js';
import { BinWriter } from './BinWriter.js';
import { CACHE_FILES, CACHE_FORMAT, CACHE_VERSION, isTwoSided, MASK_IGNORE, type CacheKey, type CacheKind, type CacheMeta, type TokenDtype } from './cacheLayout.js';
import type { EncodedBatch } from './encodeBatch.js';

export class CacheWriter {
  private readonly tokens: BinWriter;
  private readonly mask: BinWriter;
  private readonly xpos: BinWriter;
  private readonly xval: BinWriter;
  private readonly docs: BinWriter;
  private readonly items: BinWriter | null;
  private readonly prompts: BinWriter | null;
  private readonly tags: BinWriter | null;
  private readonly packer: Packer | null;
  private total = 0;
  private docCount = 0;
  private itemCount = 0;
  private explicit = 0;
  private supervised = 0;
  private closed = false;

  constructor(
    readonly dir: string,
    readonly kind: CacheKind,
    readonly tokenDtype: TokenDtype,
    readonly pack: PackOptions,
  ) {
    mkdirSync(dir, { recursive: true });
    const w = (name: string) => new BinWriter(join(dir, name));
    this.tokens = w(CACHE_FILES.tokens);
    this.mask = w(CACHE_FILES.mask);
    this.xpos = w(CACHE_FILES.explicitPos);
    this.xval = w(CACHE_FILES.explicitVal);
    this.docs = w(CACHE_FILES.docs);
    this.items = kind === 'sequences' ? w(CACHE_FILES.items) : null;
    this.prompts = isTwoSided(kind) ? w(CACHE_FILES.prompts) : null;
    this.tags = kind === 'feedback' ? w(CACHE_FILES.tags) : null;
    this.packer = kind === 'sequences' ? new Packer(pack) : null;
    this.items?.writeF64(0);
  }

  add(b: EncodedBatch): void {
    const base = this.total;
    this.tokens.write(b.tokens);
    this.mask.write(b.mask);
    if (b.explicitPos.length > 0) {
      const pos = Float64Array.from(b.explicitPos, (p) => p + base);
      this.xpos.write(pos);
      this.xval.write(b.explicitVal);
      this.explicit += pos.length;
    }
    if (b.prompts) this.prompts!.write(b.prompts);
    if (b.tags) this.tags!.write(b.tags);
    this.supervised += b.supervised;
    let at = 0;
    for (let k = 0; k < b.lens.length; k++) {
      const len = b.lens[k]!;
      this.docs.writeF64(base + at);
      this.docCount++;
      if (this.packer) {
        for (const end of this.packer.add(len)) this.closeItem(end, base + at, base + at + len, b.mask, base);
      } else if (k % 2 === 1) this.itemCount++;
      at += len;
    }
    this.total = base + at;
  }

  /**
   * A sequence ends at `end`; when that cuts the document [docStart, docEnd), the token at the
   * cut becomes the first of a piece, so its label (the previous piece's last target) is no
   * longer trained.
   */
  private closeItem(end: number, docStart: number, docEnd: number, mask: Uint8Array, base: number): void {
    this.items!.writeF64(end);
    this.itemCount++;
    if (end > docStart && end < docEnd && mask[end - base] !== MASK_IGNORE) this.supervised--;
  }

  finish(o: { key: CacheKey; digest: string; stats: Omit<DataStats, 'items' | 'tokens' | 'supervisedTokens'> }): CacheMeta {
    if (this.packer) for (const end of this.packer.end()) {
      this.items!.writeF64(end);
      this.itemCount++;
    }
    this.docs.writeF64(this.total);
    this.close(true);
    const meta: CacheMeta = {
      format: CACHE_FORMAT,
      version: CACHE_VERSION,
      digest: o.digest,
      key: o.key,
      kind: this.kind,
      tokenDtype: this.tokenDtype,
      pack: this.pack,
      counts: { tokens: this.total, docs: this.docCount, items: this.itemCount, explicit: this.explicit },
      stats: { ...o.stats, items: this.itemCount, tokens: this.total, supervisedTokens: this.supervised },
    };
    const path = join(this.dir, CACHE_FILES.meta);
    writeFileSync(path, JSON.stringify(meta, null, 1) + '\n', { flag: 'wx' });
    syncPath(path);
    syncPath(this.dir);
    return meta;
  }

  /** Closes every file (fsynced when `sync`); safe to call twice. */
  close(sync = false): void {
    if (this.closed) return;
    this.closed = true;
    let first: unknown;
    for (const w of [this.tokens, this.mask, this.xpos, this.xval, this.docs, this.items, this.prompts, this.tags]) {
      try {
        w?.close(sync);
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
