/**
 * The built-in tokenizer for models without a tokenizer.json: one id per UTF-8 byte.
 *
 * Special ids, chosen so that they always fit the model's vocabulary:
 * - vocab_size >= 259: bytes are ids 0..255, BOS = 256, EOS = 257, PAD = 258 (no byte is lost).
 * - 256 <= vocab_size < 259 (the tiny model): the control bytes NUL/SOH/STX are reserved as
 *   PAD = 0, BOS = 1, EOS = 2 (matching the tiny config's bos_token_id 1 / eos_token_id 2); a text
 *   byte 0x00..0x02 is encoded as 0x1A (SUB, the ASCII substitute character) so a text can never
 *   forge a special id.
 * It must never produce an id >= vocabSize and never depends on anything outside this file.
 */
import type { TextTokenizer } from './TextTokenizer.js';
import { DataError } from '../data/DataError.js';

const SUBSTITUTE = 0x1a;

export class ByteTokenizer implements TextTokenizer {
  readonly kind = 'byte' as const;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** PT documents start with BOS: the tiny model's config names bos_token_id 1. */
  readonly addBos = true;
  /** True when the special ids overlap control bytes (vocab < 259). */
  readonly reservedControlBytes: boolean;

  constructor(vocabSize = 256) {
    if (!Number.isInteger(vocabSize) || vocabSize < 256) {
      throw new DataError(`the byte tokenizer needs vocab_size >= 256, the model has ${vocabSize}`);
    }
    this.vocabSize = vocabSize;
    this.reservedControlBytes = vocabSize < 259;
    if (this.reservedControlBytes) {
      this.padId = 0;
      this.bosId = 1;
      this.eosId = 2;
    } else {
      this.bosId = 256;
      this.eosId = 257;
      this.padId = 258;
    }
  }

  encode(text: string): number[] {
    const bytes = Buffer.from(text, 'utf8');
    const out = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      out[i] = this.reservedControlBytes && b <= 2 ? SUBSTITUTE : b;
    }
    return out;
  }

  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const special = id === this.bosId || id === this.eosId || id === this.padId;
      if (special && options.skipSpecial) continue;
      if (id < 256) bytes.push(id);
    }
    return Buffer.from(bytes).toString('utf8');
  }
}
