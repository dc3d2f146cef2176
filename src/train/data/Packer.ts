/**
 * The streaming form of buildSequences (sequences.ts): given the document lengths in order, where
 * each training sequence ends. Documents are stored one after another in a token stream, so a
 * sequence is a token range [start, end) of it, and the documents inside are the pieces of the
 * documents that range cuts. Holds two numbers of state whatever the data size. The ranges are
 * exactly the sequences buildSequences makes from the same documents (a tested equivalence),
 * provided documents are first cut to cutoffLen when overflow is 'truncate' (`keep`). Must never
 * produce an empty sequence.
 */
import type { PackOptions } from './sequences.js';

export class Packer {
  /** Tokens added so far (the end of the stream). */
  private total = 0;
  /** Where the open sequence starts. */
  private start = 0;

  constructor(readonly opt: PackOptions) {
    if (!Number.isInteger(opt.cutoffLen) || opt.cutoffLen < 1) throw new RangeError(`cutoffLen must be a positive integer, got ${opt.cutoffLen}`);
  }

  /** How many tokens of a document of `len` tokens are stored ('truncate' keeps the first cutoffLen). */
  keep(len: number): number {
    return this.opt.overflow === 'truncate' ? Math.min(len, this.opt.cutoffLen) : len;
  }

  /**
   * Adds a document of `len` stored tokens (after `keep`); returns the stream offsets where
   * sequences closed, in order (possibly none). Empty documents add nothing.
   */
  add(len: number): number[] {
    const ends: number[] = [];
    if (len === 0) return ends;
    const cutoff = this.opt.cutoffLen;
    if (!this.opt.packing) {
      // each document alone, split into cutoff-sized pieces ('truncate' documents fit in one)
      for (let a = cutoff; a < len; a += cutoff) ends.push(this.total + a);
      this.total += len;
      ends.push(this.total);
      this.start = this.total;
      return ends;
    }
    if (this.opt.overflow === 'truncate') {
      // next fit over whole documents
      if (this.total - this.start + len > cutoff) {
        ends.push(this.total);
        this.start = this.total;
      }
      this.total += len;
      return ends;
    }
    // 'split': sequences are consecutive cutoff-sized windows of the stream
    this.total += len;
    while (this.start + cutoff <= this.total) {
      this.start += cutoff;
      ends.push(this.start);
    }
    return ends;
  }

  /** Closes the last sequence; returns its end (or nothing when it is empty). */
  end(): number[] {
    if (this.total === this.start) return [];
    this.start = this.total;
    return [this.total];
  }
}
