/**
 * The tokenizer contract the data plane codes against. Both implementations (the byte-level
 * fallback and Hugging Face `tokenizer.json`) are pure, synchronous after loading, and never
 * fetch anything. `encode` never adds special tokens by itself: templates add BOS/EOS explicitly,
 * so the token layout is decided in one place (src/train/data/templates.ts).
 */
export interface TextTokenizer {
  readonly kind: 'byte' | 'hf';
  /** Number of ids the model must accept (every id produced is < this). */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, or null when the tokenizer has none (Qwen2). */
  readonly bosId: number | null;
  readonly eosId: number;
  readonly padId: number;
  /** Whether plain-text (PT) documents start with BOS (HF: tokenizer_config add_bos_token). */
  readonly addBos: boolean;
  /** Text to ids. Special-token strings (e.g. `<|im_end|>`) map to their ids for HF tokenizers. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecial?: boolean }): string;
}
