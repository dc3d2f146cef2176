/**
 * A Hugging Face `tokenizer.json` (+ optional `tokenizer_config.json`) as a TextTokenizer.
 * The engine is the npm package `@huggingface/tokenizers` (pure JS, no downloads) when it is
 * installed, else our ByteLevelBpe (same results on byte-level BPE tokenizers; see the tests).
 * It must never fetch anything and never let an id >= the model's vocab_size through.
 */
import { readFileSync } from 'node:fs';
import type { TextTokenizer } from './TextTokenizer.js';
import { ByteLevelBpe } from './ByteLevelBpe.js';
import { DataError } from '../data/DataError.js';

/** What we use of the npm package's Tokenizer class. */
interface PackageTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
  token_to_id(token: string): number | undefined;
}

type Engine =
  | { name: 'package'; tok: PackageTokenizer }
  | { name: 'builtin'; tok: ByteLevelBpe };

export interface HfTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
  /** config.json of the model (bos/eos ids when tokenizer_config.json lacks them). */
  modelConfig?: Record<string, unknown>;
  file?: string;
}

let packageModule: Promise<{ Tokenizer: new (j: object, c: object) => PackageTokenizer } | null> | null = null;

/** The npm package if installed; null otherwise (never an error: we have a fallback). */
function loadPackage(): Promise<{ Tokenizer: new (j: object, c: object) => PackageTokenizer } | null> {
  // A variable specifier keeps tsc from requiring the package at build time.
  const specifier = '@huggingface/tokenizers';
  packageModule ??= import(specifier).then(
    (m: { Tokenizer?: new (j: object, c: object) => PackageTokenizer }) => (m.Tokenizer ? { Tokenizer: m.Tokenizer } : null),
    () => null,
  );
  return packageModule;
}

function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export class HfTokenizer implements TextTokenizer {
  readonly kind = 'hf' as const;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number;
  readonly padId: number;
  readonly addBos: boolean;
  /** Which engine tokenizes: the npm package or our built-in BPE. */
  readonly engineName: 'package' | 'builtin';
  private readonly engine: Engine;
  private readonly specialIds: Set<number>;

  private constructor(engine: Engine, files: HfTokenizerFiles, vocabSize: number) {
    const file = files.file ?? 'tokenizer.json';
    this.engine = engine;
    this.engineName = engine.name;
    this.vocabSize = vocabSize;
    const idOf = (t: string): number | undefined =>
      engine.name === 'package' ? engine.tok.token_to_id(t) : engine.tok.tokenToId(t);
    const cfg = files.tokenizerConfig ?? {};
    const mc = files.modelConfig ?? {};
    const pick = (key: 'bos' | 'eos' | 'pad'): number | null => {
      const present = `${key}_token` in cfg;
      const name = tokenName(cfg[`${key}_token`]);
      // An explicit null (Qwen2's bos_token) means "none": config.json's id is not a fallback then.
      if (present && name === null) return null;
      if (name !== null) {
        const id = idOf(name);
        if (id === undefined) throw new DataError(`${key}_token '${name}' is not in the vocabulary`, { file, field: `${key}_token` });
        return id;
      }
      const v = mc[`${key}_token_id`];
      return typeof v === 'number' ? v : null;
    };
    this.bosId = pick('bos');
    const eos = pick('eos');
    if (eos === null) throw new DataError('no eos_token in tokenizer_config.json nor eos_token_id in config.json', { file, field: 'eos_token' });
    this.eosId = eos;
    this.padId = pick('pad') ?? eos;
    this.addBos = cfg.add_bos_token === true && this.bosId !== null;
    this.specialIds = new Set<number>();
    for (const a of (files.tokenizerJson.added_tokens ?? []) as { id: number; special?: boolean }[]) {
      if (a.special) this.specialIds.add(a.id);
    }
    for (const id of [this.bosId, this.eosId, this.padId]) {
      if (id !== null && (id < 0 || id >= vocabSize)) {
        throw new DataError(`special id ${id} does not fit the model's vocab_size ${vocabSize}`, { file });
      }
    }
  }

  /** Builds a tokenizer; `engine: 'builtin'` forces our BPE (tests compare the two). */
  static async create(files: HfTokenizerFiles, vocabSize: number, engine: 'auto' | 'builtin' = 'auto'): Promise<HfTokenizer> {
    const pkg = engine === 'auto' ? await loadPackage() : null;
    const e: Engine = pkg
      ? { name: 'package', tok: new pkg.Tokenizer(files.tokenizerJson, files.tokenizerConfig ?? {}) }
      : { name: 'builtin', tok: new ByteLevelBpe(files.tokenizerJson, files.file) };
    return new HfTokenizer(e, files, vocabSize);
  }

  static async fromFiles(tokenizerJsonPath: string, vocabSize: number, extra: { tokenizerConfigPath?: string; modelConfig?: Record<string, unknown> } = {}): Promise<HfTokenizer> {
    const read = (p: string): Record<string, unknown> => {
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new DataError(`cannot read: ${(err as Error).message}`, { file: p }, { cause: err });
      }
    };
    return HfTokenizer.create({
      tokenizerJson: read(tokenizerJsonPath),
      tokenizerConfig: extra.tokenizerConfigPath ? read(extra.tokenizerConfigPath) : undefined,
      modelConfig: extra.modelConfig,
      file: tokenizerJsonPath,
    }, vocabSize);
  }

  encode(text: string): number[] {
    const ids = this.engine.name === 'package'
      ? this.engine.tok.encode(text, { add_special_tokens: false }).ids
      : this.engine.tok.encode(text);
    for (const id of ids) {
      if (id >= this.vocabSize) throw new DataError(`token id ${id} does not fit the model's vocab_size ${this.vocabSize}`);
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, options: { skipSpecial?: boolean } = {}): string {
    const arr = Array.from(ids);
    return this.engine.name === 'package'
      ? this.engine.tok.decode(arr, { skip_special_tokens: options.skipSpecial === true })
      : this.engine.tok.decode(arr, options.skipSpecial === true);
  }

  isSpecial(id: number): boolean { return this.specialIds.has(id); }
}
