/**
 * A finished token cache, mapped read-only: its sequences (pt/sft), preference pairs (dpo) or KTO
 * examples (kto) as
 * item sources that build item i from the mapped arrays when the training loop asks for it, so a
 * host keeps one copy of the data in its page cache for all its ranks, and no rank holds more
 * than the micro-batch it trains on. Opening checks the layout (sizes, offsets); reading checks
 * every token id against the model's vocabulary. It must never hand out labels that are not
 * shifted within their document piece, as sequences.ts defines them.
 */
import { join } from 'node:path';
import { MappedFile } from '../../../engine/mappedFile.js';
import { DataError } from '../DataError.js';
import type { ItemSource } from '../ItemSource.js';
import type { FeedbackItem } from '../feedback.js';
import type { PreferencePair, PreferenceSequence, Sequence } from '../sequences.js';
import { IGNORE_INDEX } from '../templates.js';
import { CACHE_FILES, isTwoSided, MASK_EXPLICIT, MASK_IGNORE, MASK_TOKEN, type CacheMeta } from './cacheLayout.js';
import { readCacheMeta } from './cacheStore.js';
import { MappedArray, type ElementKind } from './MappedArray.js';

export class TokenCache {
  private readonly files: MappedFile[] = [];
  private readonly tokens: MappedArray;
  private readonly mask: MappedArray;
  private readonly xpos: MappedArray;
  private readonly xval: MappedArray;
  private readonly docs: MappedArray;
  private readonly items: MappedArray | null;
  private readonly prompts: MappedArray | null;
  private readonly tags: MappedArray | null;

  private constructor(
    readonly dir: string,
    readonly meta: CacheMeta,
    readonly vocabSize: number,
  ) {
    const c = meta.counts;
    const open = (name: string, kind: ElementKind, count: number): MappedArray => {
      const f = MappedFile.open(join(dir, name));
      this.files.push(f);
      const a = new MappedArray(f, kind);
      if (a.length !== count) this.damaged(name, `holds ${f.size} bytes, not the ${count} ${kind} elements meta.json counts`);
      return a;
    };
    try {
      this.tokens = open(CACHE_FILES.tokens, meta.tokenDtype, c.tokens);
      this.mask = open(CACHE_FILES.mask, 'u8', c.tokens);
      this.xpos = open(CACHE_FILES.explicitPos, 'f64', c.explicit);
      this.xval = open(CACHE_FILES.explicitVal, 'i32', c.explicit);
      this.docs = open(CACHE_FILES.docs, 'f64', c.docs + 1);
      this.items = meta.kind === 'sequences' ? open(CACHE_FILES.items, 'f64', c.items + 1) : null;
      this.prompts = isTwoSided(meta.kind) ? open(CACHE_FILES.prompts, 'i32', c.docs) : null;
      this.tags = meta.kind === 'feedback' ? open(CACHE_FILES.tags, 'u8', c.items) : null;
      this.checkOffsets(CACHE_FILES.docs, this.docs, c.tokens);
      if (this.items) this.checkOffsets(CACHE_FILES.items, this.items, c.tokens);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Opens the cache in `dir` for a model of `vocabSize` ids. */
  static open(dir: string, o: { vocabSize: number }): TokenCache {
    const meta = readCacheMeta(dir);
    if (meta === null) throw new DataError(`no token cache here (${CACHE_FILES.meta} is missing)`, { file: dir });
    return new TokenCache(dir, meta, o.vocabSize);
  }

  private damaged(name: string, what: string): never {
    throw new DataError(`${what}: the cache is damaged (delete it or set overwrite_cache: true)`, { file: join(this.dir, name) });
  }

  /** Offsets start at 0, never decrease, and end at the stream length (one pass, in segment-sized reads). */
  private checkOffsets(name: string, a: MappedArray, total: number): void {
    let prev = 0;
    const step = 2 ** 20;
    for (let i = 0; i < a.length; i += step) {
      const v = a.read(i, Math.min(step, a.length - i));
      for (let k = 0; k < v.length; k++) {
        const x = v[k]!;
        if ((i === 0 && k === 0 && x !== 0) || x < prev || !Number.isInteger(x)) this.damaged(name, `offset ${i + k} is ${x} after ${prev}`);
        prev = x;
      }
    }
    if (prev !== total) this.damaged(name, `the last offset is ${prev}, the stream holds ${total} tokens`);
  }

  get kind(): CacheMeta['kind'] {
    return this.meta.kind;
  }

  /** The pt/sft sequences. */
  sequences(): ItemSource<Sequence> {
    if (!this.items) throw new DataError(`holds preference pairs (stage dpo), not sequences`, { file: this.dir });
    const items = this.items;
    const n = this.meta.counts.items;
    return { length: n, at: (i) => (Number.isInteger(i) && i >= 0 && i < n ? this.range(items.get(i), items.get(i + 1)) : undefined) };
  }

  /** The dpo pairs. */
  pairs(): ItemSource<PreferencePair> {
    if (this.meta.kind !== 'pairs') throw new DataError(`holds ${this.meta.kind === 'feedback' ? 'KTO examples (stage kto)' : 'sequences (stage pt or sft)'}, not preference pairs`, { file: this.dir });
    const n = this.meta.counts.items;
    return { length: n, at: (i) => (Number.isInteger(i) && i >= 0 && i < n ? { chosen: this.side(2 * i), rejected: this.side(2 * i + 1) } : undefined) };
  }

  /** The kto examples: each one's sequence, its KL sequence and its tag. */
  feedback(): ItemSource<FeedbackItem> {
    const tags = this.tags;
    if (!tags) throw new DataError(`holds ${this.meta.kind === 'pairs' ? 'preference pairs (stage dpo)' : 'sequences (stage pt or sft)'}, not KTO examples`, { file: this.dir });
    const n = this.meta.counts.items;
    return { length: n, at: (i) => (Number.isInteger(i) && i >= 0 && i < n ? { target: this.side(2 * i), kl: this.side(2 * i + 1), desirable: tags.get(i) === 1 } : undefined) };
  }

  private side(d: number): PreferenceSequence {
    return { ...this.range(this.docs.get(d), this.docs.get(d + 1)), promptLen: this.prompts!.get(d) };
  }

  /** The sequence of stream range [a, b): its document pieces, labels shifted within each piece. */
  private range(a: number, b: number): Sequence {
    const n = b - a;
    const tokens = Int32Array.from(this.tokens.read(a, n));
    const mask = this.mask.read(a, n);
    const labels = new Int32Array(n);
    const positions = new Int32Array(n);
    const lens: number[] = [];
    for (let t = 0; t < n; t++) if (tokens[t]! >= this.vocabSize) this.badToken(a + t, tokens[t]!);
    let d = this.docs.upperBound(a) - 1;
    for (let p0 = a; p0 < b; d++) {
      const pe = Math.min(this.docs.get(d + 1), b);
      if (pe <= p0) continue;
      for (let t = p0; t < pe; t++) {
        const i = t - a;
        positions[i] = t - p0;
        labels[i] = t + 1 < pe ? this.label(t + 1, mask[i + 1]!, tokens[i + 1]!) : IGNORE_INDEX;
      }
      lens.push(pe - p0);
      p0 = pe;
    }
    return { tokens, labels, positions, docLens: Int32Array.from(lens) };
  }

  private label(pos: number, m: number, token: number): number {
    if (m === MASK_IGNORE) return IGNORE_INDEX;
    if (m === MASK_TOKEN) return token;
    if (m !== MASK_EXPLICIT) this.damaged(CACHE_FILES.mask, `mask value ${m} at stream position ${pos}`);
    const k = this.xpos.upperBound(pos) - 1;
    if (k < 0 || this.xpos.get(k) !== pos) this.damaged(CACHE_FILES.explicitPos, `no explicit label for stream position ${pos}`);
    const l = this.xval.get(k);
    if (l !== IGNORE_INDEX && (l < 0 || l >= this.vocabSize)) this.badToken(pos, l);
    return l;
  }

  private badToken(pos: number, id: number): never {
    throw new DataError(`token id ${id} at stream position ${pos} does not fit vocab_size ${this.vocabSize} (built for another tokenizer? delete the cache or set overwrite_cache: true)`, { file: join(this.dir, CACHE_FILES.tokens) });
  }

  /** Unmaps every file; items read before stay valid (they are copies). Safe to call twice. */
  close(): void {
    for (const f of this.files) f.close();
  }
}
