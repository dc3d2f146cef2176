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

t.test('qwen3 template (ChatML, no default system, empty thought before answers without one)', async (t) => {
  const tok = await HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 270, 'builtin');
  const s = encodeSft(tok, 'qwen3', { system: null, turns: [{ user: 'hello', assistant: 'world' }, { user: 'the', assistant: '<think>\nhello\n</think>\n\nworld' }] }, 4096);
  t.same(runs((i) => tok.decode(i), s.inputIds, s.labels), [
    [true, '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n'],
    [false, '<think>\n\n</think>\n\nworld<|im_end|>\n'],
    [true, '<|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n'],
    [false, '<think>\nhello\n</think>\n\nworld<|im_end|>\n'],
  ], 'the empty thought is a target (thinking on); an answer with its own thought is kept as it is');
  const prompt = tok.encode('<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n');
  const firstAnswer = s.inputIds.slice(prompt.length, prompt.length + s.inputIds.length);
  const expected = [...tok.encode('<think>\n\n</think>\n\n'), ...tok.encode('world<|im_end|>\n')];
  t.same(firstAnswer.slice(0, expected.length), expected, 'the empty thought is encoded on its own, then the answer (as LLaMA-Factory adds thought ids)');
  const sys = encodeSft(tok, 'qwen3', { system: 'the', turns: [{ user: 'hello', assistant: 'world' }] }, 4096);
  t.equal(tok.decode(sys.inputIds.slice(0, tok.encode('<|im_start|>system\nthe<|im_end|>\n').length)), '<|im_start|>system\nthe<|im_end|>\n', 'a given system prompt comes first');
});

t.test('qwen3 preference pair: history answers lose their thoughts, only the final answers get the empty one', async (t) => {
  const ex = { system: null, history: [{ user: 'q1', assistant: '<think>\nsecret\n</think>\n\na1' }], prompt: 'q2', chosen: 'good', rejected: '<think>\nno\n</think>\n\nbad' };
  const p = encodePair(bytes, 'qwen3', ex, 100000);
  t.equal(bytes.decode(p.prompt), '<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n');
  t.equal(bytes.decode(p.chosen), '<think>\n\n</think>\n\ngood<|im_end|>\n', 'chosen without a thought: the empty one first');
  t.equal(bytes.decode(p.rejected), '<think>\nno\n</think>\n\nbad<|im_end|>\n', 'rejected keeps its own thought');
});

t.test('mistral template: BOS, [INST] with the system prompt joined to the first user message, EOS after answers', async (t) => {
  const s = encodeSft(bytes, 'mistral', { system: 'S', turns: [{ user: 'Q', assistant: 'A' }, { user: 'R', assistant: 'B' }] }, 4096);
  t.equal(s.inputIds[0], bytes.bosId, 'BOS first');
  t.equal(s.labels[0], IGNORE_INDEX);
  t.same(runs((i) => bytes.decode(i), s.inputIds.slice(1), s.labels.slice(1)), [
    [true, '[INST] S\n\nQ[/INST]'],
    [false, ' A\x02'],
    [true, '[INST] R[/INST]'],
    [false, ' B\x02'],
  ]);
  const plain = encodeSft(bytes, 'mistral', { system: null, turns: [{ user: 'Q', assistant: 'A' }] }, 4096);
  t.equal(bytes.decode(plain.inputIds.slice(1)), '[INST] Q[/INST] A\x02', 'no default system prompt');
});
