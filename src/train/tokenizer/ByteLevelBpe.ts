/**
 * A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, Llama 3 and
 * Qwen2 layouts): added/special tokens split first, optional NFC normalizer, the pre-tokenizer
 * regex (ByteLevel's GPT-2 pattern or a `Split` pattern), the byte-to-unicode mapping, ranked
 * merges (with `ignore_merges`) and the ByteLevel decoder. It is the fallback used when the npm
 * package `@huggingface/tokenizers` is not installed; it must never fetch anything and must refuse
 * (ERR_DATA) a tokenizer.json layout it does not implement rather than tokenize it differently.
 */
import { DataError } from '../data/DataError.js';

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** GPT-2's reversible map from bytes to printable unicode characters. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

/** JS regexes (Node 20) lack inline `(?i:...)`: expand its letters into classes instead. */
function toJsPattern(pattern: string): string {
  return pattern.replace(/\(\?i:([^()]*)\)/g, (_m, body: string) =>
    '(?:' + body.replace(/[a-zA-Z]/g, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`) + ')');
}

interface AddedToken { id: number; content: string; special: boolean }

type Json = Record<string, unknown>;

export class ByteLevelBpe {
  private readonly vocab = new Map<string, number>();
  private readonly idToToken: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly ignoreMerges: boolean;
  private readonly nfc: boolean;
  private readonly splitters: RegExp[] = [];
  private readonly addPrefixSpace: boolean;
  private readonly added: AddedToken[];
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly addedSplit: RegExp | null;
  private readonly byteToChar = bytesToUnicode();
  private readonly charToByte = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(json: Json, file = 'tokenizer.json') {
    const fail = (field: string, msg: string): never => { throw new DataError(msg, { file, field }); };
    this.byteToChar.forEach((c, b) => this.charToByte.set(c, b));
    const model = json.model as Json | undefined;
    if (!model || model.type !== 'BPE') fail('model.type', `only BPE models are supported, got ${String(model?.type)}`);
    const vocab = model!.vocab as Record<string, number>;
    for (const [tok, id] of Object.entries(vocab)) { this.vocab.set(tok, id); this.idToToken[id] = tok; }
    const merges = (model!.merges ?? []) as (string | [string, string])[];
    merges.forEach((m, i) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m) : m;
      this.ranks.set(a + ' ' + b, i);
    });
    this.ignoreMerges = model!.ignore_merges === true;
    if (model!.byte_fallback === true) fail('model.byte_fallback', 'byte_fallback (sentencepiece-style) BPE is not supported');

    const norms = flatten(json.normalizer as Json | null, 'normalizers');
    this.nfc = false;
    for (const n of norms) {
      if (n.type === 'NFC') this.nfc = true;
      else fail('normalizer', `normalizer ${String(n.type)} is not supported`);
    }
    let prefix = false;
    let byteLevelSeen = false;
    for (const p of flatten(json.pre_tokenizer as Json | null, 'pretokenizers')) {
      if (p.type === 'Split') {
        const pat = p.pattern as Json;
        if (typeof pat?.Regex !== 'string') fail('pre_tokenizer.pattern', 'only Regex split patterns are supported');
        if (p.behavior !== 'Isolated' || p.invert === true) fail('pre_tokenizer.behavior', `Split behavior ${String(p.behavior)} is not supported`);
        this.splitters.push(new RegExp(toJsPattern(pat.Regex as string), 'gu'));
      } else if (p.type === 'ByteLevel') {
        byteLevelSeen = true;
        prefix = p.add_prefix_space === true;
        if (p.use_regex !== false) this.splitters.push(new RegExp(GPT2_PATTERN, 'gu'));
      } else fail('pre_tokenizer', `pre-tokenizer ${String(p.type)} is not supported`);
    }
    if (!byteLevelSeen) fail('pre_tokenizer', 'a ByteLevel pre-tokenizer is required');
    this.addPrefixSpace = prefix;

    this.added = ((json.added_tokens ?? []) as Json[]).map((a) => ({
      id: a.id as number, content: a.content as string, special: a.special === true,
    }));
    for (const a of this.added) { this.addedByContent.set(a.content, a); this.idToToken[a.id] = a.content; }
    const contents = this.added.map((a) => a.content).sort((x, y) => y.length - x.length);
    this.addedSplit = contents.length > 0
      ? new RegExp('(' + contents.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|') + ')', 'u')
      : null;
  }

  get size(): number { return this.idToToken.length; }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.vocab.get(token);
  }

  isSpecial(id: number): boolean {
    return this.added.some((a) => a.id === id && a.special);
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const parts = this.addedSplit ? text.split(this.addedSplit) : [text];
    parts.forEach((part, i) => {
      if (part.length === 0) return;
      // split() with one capture group alternates text, token, text, ...
      if (i % 2 === 1) { out.push(this.addedByContent.get(part)!.id); return; }
      this.encodeText(part, out);
    });
    return out;
  }

  private encodeText(text: string, out: number[]): void {
    let s = this.nfc ? text.normalize('NFC') : text;
    if (this.addPrefixSpace && !s.startsWith(' ')) s = ' ' + s;
    let pieces = [s];
    for (const re of this.splitters) {
      const next: string[] = [];
      for (const p of pieces) {
        let last = 0;
        for (const m of p.matchAll(re)) {
          if (m.index! > last) next.push(p.slice(last, m.index));
          if (m[0].length > 0) next.push(m[0]);
          last = m.index! + m[0].length;
        }
        if (last < p.length) next.push(p.slice(last));
      }
      pieces = next;
    }
    for (const piece of pieces) {
      let word = '';
      for (const b of Buffer.from(piece, 'utf8')) word += this.byteToChar[b];
      for (const id of this.bpe(word)) out.push(id);
    }
  }

  private bpe(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let ids: number[];
    const whole = this.vocab.get(word);
    if (this.ignoreMerges && whole !== undefined) ids = [whole];
    else {
      let sym = Array.from(word);
      while (sym.length > 1) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i + 1 < sym.length; i++) {
          const r = this.ranks.get(sym[i] + ' ' + sym[i + 1]);
          if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
        }
        if (best < 0) break;
        const a = sym[best]!, b = sym[best + 1]!;
        const merged: string[] = [];
        for (let i = 0; i < sym.length; i++) {
          if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) { merged.push(a + b); i++; }
          else merged.push(sym[i]!);
        }
        sym = merged;
      }
      ids = sym.map((s) => {
        const id = this.vocab.get(s);
        if (id === undefined) throw new DataError(`symbol '${s}' is not in the vocabulary`, { field: 'model.vocab' });
        return id;
      });
    }
    if (this.cache.size < 100_000) this.cache.set(word, ids);
    return ids;
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    const bytes: number[] = [];
    let text = '';
    const flush = (): void => { text += Buffer.from(bytes).toString('utf8'); bytes.length = 0; };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const added = this.added.find((a) => a.id === id);
      if (added) {
        if (skipSpecial && added.special) continue;
        flush();
        text += added.content;
        continue;
      }
      const tok = this.idToToken[id];
      if (tok === undefined) continue;
      for (const c of tok) {
        const b = this.charToByte.get(c);
        if (b !== undefined) bytes.push(b);
      }
    }
    flush();
    return text;
  }
}

function splitMerge(m: string): [string, string] {
  const i = m.indexOf(' ', 1);
  return [m.slice(0, i), m.slice(i + 1)];
}

function flatten(node: Json | null | undefined, key: string): Json[] {
  if (!node) return [];
  if (node.type === 'Sequence') return ((node[key] ?? []) as Json[]).flatMap((n) => flatten(n, key));
  return [node];
}
