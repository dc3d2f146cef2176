import t from 'tap';
import { readFileSync } from 'node:fs';
import { ByteTokenizer, HfTokenizer } from '../../src/train/tokenizer/index.js';
import { encodeSft, encodePair, inferSeqLen, IGNORE_INDEX } from '../../src/train/data/index.js';

const tokJson = JSON.parse(readFileSync('test/train/fixtures/tiny-bpe/tokenizer.json', 'utf8')) as Record<string, unknown>;
const tokCfg = JSON.parse(readFileSync('test/train/fixtures/tiny-bpe/tokenizer_config.json', 'utf8')) as Record<string, unknown>;
const bytes = new ByteTokenizer(256);

/** Splits a sample into runs of (masked?, text) for readable assertions. */
function runs(decode: (ids: number[]) => string, ids: number[], labels: number[]): [boolean, string][] {
  const out: [boolean, string][] = [];
  for (let i = 0; i < ids.length; i++) {
    const masked = labels[i] === IGNORE_INDEX;
    if (!masked && labels[i] !== ids[i]) throw new Error(`label ${labels[i]} != token ${ids[i]} at ${i}`);
    const last = out[out.length - 1];
    if (last && last[0] === masked) last[1] += decode([ids[i]!]);
    else out.push([masked, decode([ids[i]!])]);
  }
  return out;
}

t.test('qwen template (ChatML, default system prompt) with special tokens from tokenizer.json', async (t) => {
  const tok = await HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 270, 'builtin');
  const s = encodeSft(tok, 'qwen', { system: null, turns: [{ user: 'hello', assistant: 'world' }, { user: 'the', assistant: 'hello world' }] }, 4096);
  t.same(runs((i) => tok.decode(i), s.inputIds, s.labels), [
    [true, '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n'],
    [false, 'world<|im_end|>\n'],
    [true, '<|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n'],
    [false, 'hello world<|im_end|>\n'],
  ]);
  t.equal(s.inputIds.filter((i) => i === 268).length, 5, '<|im_start|> is one special token each of its 5 times');
  t.equal(s.labels.filter((l) => l === 269).length, 2, 'each <|im_end|> closing an answer is a target');
});

t.test('llama3 template: BOS, headers, eot', async (t) => {
  const s = encodeSft(bytes, 'llama3', { system: 'S', turns: [{ user: 'Q', assistant: 'A' }] }, 4096);
  t.equal(s.inputIds[0], bytes.bosId, 'BOS first');
  t.same(runs((i) => bytes.decode(i, { skipSpecial: true }), s.inputIds.slice(1), s.labels.slice(1)), [
    [true, '<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n'],
    [false, 'A<|eot_id|>'],
  ]);
  t.equal(s.labels[0], IGNORE_INDEX);
});

t.test('default template: Human/Assistant with EOS after each answer', async (t) => {
  const s = encodeSft(bytes, 'default', { system: 'Be brief.', turns: [{ user: 'hi', assistant: 'yo' }] }, 4096);
  t.same(runs((i) => bytes.decode(i), s.inputIds, s.labels), [[true, 'System: Be brief.\nHuman: hi\nAssistant:'], [false, 'yo\x02']]);
});

t.test('truncation follows LLaMA-Factory infer_seqlen', async (t) => {
  t.same(inferSeqLen(100, 10, 64), [54, 10], 'short target kept whole, source cut');
  t.same(inferSeqLen(10, 100, 64), [10, 54], 'short source kept whole, target cut');
  t.same(inferSeqLen(100, 300, 64), [16, 48], 'both long: target gets floor(64*300/400) = 48, source the rest');
  const s = encodeSft(bytes, 'default', { system: null, turns: [{ user: 'x'.repeat(50), assistant: 'y'.repeat(50) }, { user: 'late', assistant: 'never' }] }, 40);
  t.equal(s.inputIds.length, 40, 'exactly cutoff_len tokens');
  t.ok(!bytes.decode(s.inputIds).includes('late'), 'turns past the budget are dropped');
  const ex = { system: null, history: [], prompt: 'p'.repeat(100), chosen: 'c'.repeat(10), rejected: 'r'.repeat(30) };
  const full = encodePair(bytes, 'qwen', ex, 100000);
  t.equal(full.rejected.length, 30 + '<|im_end|>\n'.length);
  const [ns, nt] = inferSeqLen(full.prompt.length, full.rejected.length, 64);
  const p = encodePair(bytes, 'qwen', ex, 64);
  t.same([p.prompt.length, p.chosen.length, p.rejected.length], [ns, Math.min(nt, full.chosen.length), nt], `pair cut to prompt ${ns} + answers ${nt}, the longer answer sets the budget`);
  t.ok(ns + nt <= 64);
  t.same(p.prompt, full.prompt.slice(0, ns), 'prompt keeps its head');
});
