// Templates chatml and qwen3_nothink with LLaMA-Factory's exact layout, and the data keys that
// change what is trained: default_system, enable_thinking (qwen3), train_on_prompt and
// mask_history (the last turn only, given the cutoff_len budget first), as LLaMA-Factory's
// supervised processor builds input_ids and labels.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ByteTokenizer, HfTokenizer } from '../../src/train/tokenizer/index.js';
import { encodePair, encodeSft, IGNORE_INDEX } from '../../src/train/data/index.js';

const tokJson = JSON.parse(readFileSync('test/train/fixtures/tiny-bpe/tokenizer.json', 'utf8')) as Record<string, unknown>;
const tokCfg = JSON.parse(readFileSync('test/train/fixtures/tiny-bpe/tokenizer_config.json', 'utf8')) as Record<string, unknown>;
const bytes = new ByteTokenizer(256);

/** [masked?, text] runs of a sample (labels equal to their token where trained). */
function runs(decode: (ids: number[]) => string, ids: number[], labels: number[]): [boolean, string][] {
  const out: [boolean, string][] = [];
  ids.forEach((id, i) => {
    const masked = labels[i] === IGNORE_INDEX;
    if (!masked && labels[i] !== id) throw new Error(`label ${labels[i]} != token ${id} at ${i}`);
    const last = out[out.length - 1];
    if (last && last[0] === masked) last[1] += decode([id]);
    else out.push([masked, decode([id])]);
  });
  return out;
}

const TWO = [{ user: 'hello', assistant: 'world' }, { user: 'the', assistant: 'hello world' }];

t.test('chatml and qwen3_nothink: ChatML turns, no default system prompt, no thought added', async (t) => {
  const tok = await HfTokenizer.create({ tokenizerJson: tokJson, tokenizerConfig: tokCfg }, 270, 'builtin');
  for (const name of ['chatml', 'qwen3_nothink'] as const) {
    const s = encodeSft(tok, name, { system: null, turns: TWO }, 4096);
    t.same(runs((i) => tok.decode(i), s.inputIds, s.labels), [
      [true, '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n'],
      [false, 'world<|im_end|>\n'],
      [true, '<|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n'],
      [false, 'hello world<|im_end|>\n'],
    ], `${name}: the layout of LLaMA-Factory's template`);
    t.equal(s.inputIds.filter((i) => i === 268).length, 4, `${name}: <|im_start|> is one special token`);
    const sys = encodeSft(tok, name, { system: 'the', turns: [TWO[0]!] }, 4096);
    t.equal(tok.decode(sys.inputIds), '<|im_start|>system\nthe<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nworld<|im_end|>\n');
  }
  const thought = encodeSft(bytes, 'qwen3_nothink', { system: null, turns: [{ user: 'q', assistant: '<think>\nx\n</think>\n\na' }] }, 4096);
  t.equal(bytes.decode(thought.inputIds), '<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nx\n</think>\n\na<|im_end|>\n', 'a thought in the data is kept as text');
  const pair = encodePair(bytes, 'chatml', { system: null, history: [], prompt: 'q', chosen: 'a', rejected: 'b' }, 4096);
  t.equal(bytes.decode(pair.prompt), '<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n');
  t.equal(bytes.decode(pair.chosen), 'a<|im_end|>\n');
});

t.test('default_system replaces the template\'s default, also for an empty system field', async (t) => {
  const s = encodeSft(bytes, 'qwen', { system: '', turns: [TWO[0]!] }, 4096, { defaultSystem: 'Be kind.' });
  t.match(bytes.decode(s.inputIds), /^<\|im_start\|>system\nBe kind\.<\|im_end\|>\n<\|im_start\|>user\nhello/);
  const plain = encodeSft(bytes, 'qwen', { system: '', turns: [TWO[0]!] }, 4096);
  t.match(bytes.decode(plain.inputIds), /^<\|im_start\|>system\nYou are Qwen/, 'an empty system field takes the template default (LLaMA-Factory: system or default)');
  const own = encodeSft(bytes, 'chatml', { system: 'Mine.', turns: [TWO[0]!] }, 4096, { defaultSystem: 'Be kind.' });
  t.match(bytes.decode(own.inputIds), /system\nMine\./, 'an example\'s own system prompt wins');
});

t.test('qwen3 with enable_thinking false: thoughts dropped, the empty thought is prompt (untrained)', async (t) => {
  const turns = [{ user: 'a', assistant: '<think>\nhmm\n</think>\n\nb' }, { user: 'c', assistant: 'd' }];
  const s = encodeSft(bytes, 'qwen3', { system: null, turns }, 4096, { enableThinking: false });
  t.same(runs((i) => bytes.decode(i), s.inputIds, s.labels), [
    [true, '<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n'],
    [false, 'b<|im_end|>\n'],
    [true, '<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n'],
    [false, 'd<|im_end|>\n'],
  ]);
  const p = encodePair(bytes, 'qwen3', { system: null, history: [], prompt: 'q', chosen: '<think>\nx\n</think>\n\ngood', rejected: 'bad' }, 4096, { enableThinking: false });
  t.equal(bytes.decode(p.prompt), '<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  t.equal(bytes.decode(p.chosen), 'good<|im_end|>\n', 'the chosen answer loses its thought');
});

t.test('train_on_prompt: every token is a target', async (t) => {
  const s = encodeSft(bytes, 'default', { system: 'S', turns: TWO }, 4096, { trainOnPrompt: true });
  t.same(s.labels, s.inputIds);
  const off = encodeSft(bytes, 'default', { system: 'S', turns: TWO }, 4096);
  t.same(off.inputIds, s.inputIds, 'the same tokens, only the labels differ');
  t.ok(off.labels.some((l) => l === IGNORE_INDEX));
});

t.test('mask_history: only the last answer is trained, and it keeps the budget first', async (t) => {
  const s = encodeSft(bytes, 'default', { system: null, turns: TWO }, 4096, { maskHistory: true });
  const full = encodeSft(bytes, 'default', { system: null, turns: TWO }, 4096);
  t.same(s.inputIds, full.inputIds, 'the same tokens in the same order');
  t.same(runs((i) => bytes.decode(i), s.inputIds, s.labels), [
    [true, 'Human: hello\nAssistant:world\x02\nHuman: the\nAssistant:'],
    [false, 'hello world\x02'],
  ]);
  // a budget that fits only the last turn: LLaMA-Factory encodes last to first, so it survives
  const last = encodeSft(bytes, 'default', { system: null, turns: [{ user: 'x'.repeat(40), assistant: 'y'.repeat(40) }, { user: 'q', assistant: 'answer' }] }, 30, { maskHistory: true });
  const text = bytes.decode(last.inputIds);
  t.ok(text.endsWith('Human: q\nAssistant:answer\x02'), `the last turn is whole: ${JSON.stringify(text)}`);
  t.equal(last.inputIds.length, 30);
  const plain = encodeSft(bytes, 'default', { system: null, turns: [{ user: 'x'.repeat(40), assistant: 'y'.repeat(40) }, { user: 'q', assistant: 'answer' }] }, 30);
  t.notOk(bytes.decode(plain.inputIds).includes('answer'), 'without mask_history the first turn takes the budget');
  // a reasoning template: the history answers lose their thoughts, only the last one gets the empty thought
  const q = encodeSft(bytes, 'qwen3', { system: null, turns: [{ user: 'a', assistant: '<think>\nold\n</think>\n\nb' }, { user: 'c', assistant: 'd' }] }, 4096, { maskHistory: true });
  t.same(runs((i) => bytes.decode(i), q.inputIds, q.labels), [
    [true, '<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n'],
    [false, '<think>\n\n</think>\n\nd<|im_end|>\n'],
  ]);
});
