import t from 'tap';
import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteTokenizer, HfTokenizer, ByteLevelBpe, loadTokenizer } from '../../src/train/tokenizer/index.js';
import { readFileSync } from 'node:fs';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tiny-bpe');
const tokJson = JSON.parse(readFileSync(join(fixtures, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const tokCfg = JSON.parse(readFileSync(join(fixtures, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

t.test('byte tokenizer with vocab 256 reserves NUL/SOH/STX as pad/bos/eos', async (t) => {
  const b = new ByteTokenizer(256);
  t.same([b.padId, b.bosId, b.eosId], [0, 1, 2]);
  t.same(b.encode('Az\n'), [65, 122, 10]);
  t.same(b.encode('\u0001x'), [0x1a, 120], 'a text SOH byte cannot forge BOS');
  const text = 'héllo wörld — ✓';
  t.equal(b.decode(b.encode(text)), text, 'UTF-8 round trip');
  t.equal(b.decode([1, 104, 105, 2], { skipSpecial: true }), 'hi');
  t.ok(b.encode(text).every((id) => id < 256), 'every id fits vocab 256');
});

t.test('byte tokenizer with vocab >= 259 keeps every byte and puts specials above 255', async (t) => {
  const b = new ByteTokenizer(300);
  t.same([b.bosId, b.eosId, b.padId], [256, 257, 258]);
  t.same(b.encode('\u0001'), [1]);
  t.throws(() => new ByteTokenizer(200), { code: 'ERR_DATA' });
});

t.test('built-in BPE encodes the hand-made fixture with the expected merges', async (t) => {
  const bpe = new ByteLevelBpe(tokJson);
  // vocab: 0..255 bytes, then merges he=256 ll=257 llo=258 hello=259 Ġw=260 or=261 Ġwor=262 Ġworl=263 Ġworld=264 Ġt=265 Ġthe=266
  t.same(bpe.encode('hello world'), [259, 264]);
  t.same(bpe.encode('hello the'), [259, 266]);
  t.same(bpe.encode('<|im_start|>hello<|im_end|>'), [268, 259, 269], 'added tokens split before BPE');
  // 'ü' is bytes C3 BC; byte-level ids equal the byte values here
  t.same(bpe.encode('ü'), [0xc3, 0xbc]);
  const text = 'hello world, the\nwörld <|endoftext|> 123  spaced';
  t.equal(bpe.decode(bpe.encode(text)), text, 'round trip');
  t.equal(bpe.decode(bpe.encode('hi<|im_end|>'), true), 'hi', 'skip special');
});

t.test('HfTokenizer: the npm engine (when installed) agrees with the built-in BPE', async (t) => {
  const builtin = await HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 270, 'builtin');
  const auto = await HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 270);
  t.equal(builtin.engineName, 'builtin');
  t.equal(builtin.bosId, null);
  t.equal(builtin.eosId, 269, 'eos from tokenizer_config.json');
  t.equal(builtin.padId, 267);
  const texts = ['hello world', 'the  hello\n\nworld!', "it's 42 o'clock <|im_start|>user\nhi<|im_end|>\n", 'naïve café ☕ hello'];
  for (const s of texts) {
    t.same(auto.encode(s), builtin.encode(s), `${auto.engineName} vs builtin on ${JSON.stringify(s)}`);
    t.equal(builtin.decode(builtin.encode(s)), s, `round trip ${JSON.stringify(s)}`);
  }
  await t.rejects(HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 260), { code: 'ERR_DATA' }, 'special id outside the model vocab is refused');
});

t.test('Llama-3 style Split pattern with (?i:...) is accepted and used', async (t) => {
  const json = structuredClone(tokJson) as Record<string, unknown>;
  json.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ] };
  const bpe = new ByteLevelBpe(json);
  t.same(bpe.encode('hello world'), [259, 264]);
  t.same(bpe.encode("IT'S"), [73, 84, 39, 83], "(?i:'s) matched case-insensitively: I T 'S");
  t.same(bpe.encode('12345'), [49, 50, 51, 52, 53]);
});

t.test('loadTokenizer picks tokenizer.json when present, the byte tokenizer otherwise', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  t.equal((await loadTokenizer(dir, 256)).kind, 'byte');
  t.equal((await loadTokenizer(null, 256)).kind, 'byte');
  copyFileSync(join(fixtures, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocab_size: 270, eos_token_id: 269 }));
  const tok = await loadTokenizer(dir, 270);
  t.equal(tok.kind, 'hf');
  t.equal(tok.eosId, 269, 'eos from config.json when tokenizer_config.json is absent');
});

t.test('an explicit null bos_token (Qwen2) is not replaced by config.json bos_token_id', async (t) => {
  const files = { tokenizerJson: tokJson, modelConfig: { bos_token_id: 267, eos_token_id: 269 } };
  const qwenLike = await HfTokenizer.create({ ...files, tokenizerConfig: { bos_token: null, eos_token: '<|im_end|>' } }, 270, 'builtin');
  t.equal(qwenLike.bosId, null);
  t.equal(qwenLike.addBos, false);
  const noKey = await HfTokenizer.create({ ...files, tokenizerConfig: { add_bos_token: true } }, 270, 'builtin');
  t.same([noKey.bosId, noKey.eosId, noKey.addBos], [267, 269, true], 'ids from config.json when tokenizer_config.json is silent');
});
