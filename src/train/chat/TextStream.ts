/**
 * Streaming detokenization: the text of an answer as its tokens arrive. Each push decodes the
 * whole answer so far and returns what was not returned yet, holding back a trailing U+FFFD (a
 * UTF-8 character whose bytes are split across tokens) until it completes; `end()` returns the
 * rest. Decoding the whole answer each time keeps tokenizer-dependent spacing exact. Pure.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';

export class TextStream {
  private readonly ids: number[] = [];
  private emitted = '';

  constructor(private readonly tok: TextTokenizer, private readonly skipSpecial = true) {}

  // Some decoders refuse an empty list.
  private decoded(): string {
    return this.ids.length === 0 ? '' : this.tok.decode(this.ids, { skipSpecial: this.skipSpecial });
  }

  /** New text after adding `id` ('' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.decoded();
    if (text.endsWith('\uFFFD') || !text.startsWith(this.emitted)) return '';
    const out = text.slice(this.emitted.length);
    this.emitted = text;
    return out;
  }

  /** Whatever was held back. */
  end(): string {
    const text = this.decoded();
    const out = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return out;
  }

  /** The whole answer's text. */
  get text(): string {
    return this.decoded();
  }
}
