// `ulysses-actors chat` through the real CLI, on a base model with the adapter of a real LoRA run
// (adapter_name_or_path, merged as LLaMA-Factory's inference does): the prompt is the qwen
// template's layout of the message (checked against the text it must encode), and greedy
// decoding (--do_sample false) produces exactly the tokens of a test-side greedy decode that runs
// a full forward of base + attached adapter over the whole sequence for every token, stopping at
// the tokenizer's EOS or generation_config's eos_token_id (the KV cache equals recompute); the
// streamed text is the decoded answer; a fixed seed gives the same sampled tokens, another seed
// others; the interactive form answers line by line and `clear` forgets the history; bad input
// exits 2.
import t from 'tap';
import { join } from 'node:path';
import { cpSync, writeFileSync } from 'node:fs';
import { Model } from '../../src/engine/model/index.js';
import { loadTokenizer } from '../../src/train/tokenizer/index.js';
import { runCli } from '../helpers/cli.js';
import { GENERATION_CONFIG, trainRun, writeBaseModel } from './fixtures/loraRun.js';

const root = t.testdir();
const base = join(root, 'base');
const run = join(root, 'run');
const MAX_NEW = 24;
let ready: Promise<void> | null = null;
function fixture(): Promise<void> {
  ready ??= (async () => {
    await writeBaseModel(base);
    await trainRun(base, run, {});
  })();
  return ready;
}

function chatCli(args: string[], keys: Record<string, unknown> = {}, input?: string) {
  const yaml = join(root, 'chat.yaml');
  writeFileSync(yaml, Object.entries({ model_name_or_path: base, adapter_name_or_path: run, template: 'qwen', max_new_tokens: MAX_NEW, ...keys }).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
  return runCli(['chat', yaml, ...args], { input });
}

interface JsonAnswer { prompt_tokens: number[]; tokens: number[]; text: string; finish: string; stop_token: number | null }

/** Greedy decoding by full forwards of `m` over the whole sequence, until a stop id or `max` tokens. */
async function greedyByRecompute(m: Model, prompt: number[], stops: Set<number>, max: number): Promise<{ tokens: number[]; stop: number | null }> {
  const seq = [...prompt];
  const out: number[] = [];
  while (out.length < max) {
    const n = seq.length;
    const argmax = new Int32Array(n);
    await m.forward({ tokens: Int32Array.from(seq), labels: new Int32Array(n).fill(-100), normalizer: 1, tokenArgmax: argmax });
    const id = argmax[n - 1]!;
    if (stops.has(id)) return { tokens: out, stop: id };
    out.push(id);
    seq.push(id);
  }
  return { tokens: out, stop: null };
}

t.test('greedy chat with the KV cache equals greedy decoding by full forwards of base + adapter', async (t) => {
  await fixture();
  const tok = await loadTokenizer(base, 270);
  const ref = await Model.fromPretrained(base);
  await ref.loadAdapter(run);
  const stops = new Set([tok.eosId, ...GENERATION_CONFIG.eos_token_id]);
  for (const message of ['hello there', 'what is 2 + 2?', 'abc']) {
    const r = chatCli(['--prompt', message, '--json', '--do_sample', 'false']);
    t.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as JsonAnswer;
    const layout = `<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n${message}<|im_end|>\n<|im_start|>assistant\n`;
    t.same(a.prompt_tokens, tok.encode(layout), `"${message}": the prompt is the qwen template's layout`);
    const want = await greedyByRecompute(ref, a.prompt_tokens, stops, MAX_NEW);
    t.same(a.tokens, want.tokens, `"${message}": ${a.tokens.length} tokens equal the full-forward greedy decode (${a.finish}${a.stop_token !== null ? ` at ${a.stop_token}` : ''})`);
    t.equal(a.stop_token, want.stop, 'the same stop');
    t.equal(a.finish, want.stop === null ? 'length' : 'stop');
    t.equal(a.text, tok.decode(a.tokens, { skipSpecial: true }), 'text: the decoded answer');
    const plain = chatCli(['--prompt', message, '--do_sample', 'false']);
    t.equal(plain.status, 0, plain.stderr);
    t.equal(plain.stdout, a.text + '\n', 'streamed text: the same answer');
  }
  // generation_config.json's eos_token_id ends an answer: a base whose list holds the 6th answer token
  const first = JSON.parse(chatCli(['--prompt', 'hello there', '--json', '--do_sample', 'false']).stdout) as JsonAnswer;
  const stopId = first.tokens[5]!;
  const base2 = join(root, 'base-stop');
  cpSync(base, base2, { recursive: true });
  writeFileSync(join(base2, 'generation_config.json'), JSON.stringify({ eos_token_id: [stopId] }));
  const s = JSON.parse(chatCli(['--prompt', 'hello there', '--json', '--do_sample', 'false'], { model_name_or_path: base2 }).stdout) as JsonAnswer;
  const want = await greedyByRecompute(ref, s.prompt_tokens, new Set([tok.eosId, stopId]), MAX_NEW);
  t.equal(s.finish, 'stop');
  t.equal(s.stop_token, stopId, `stopped at generation_config's eos_token_id ${stopId}`);
  t.same(s.tokens, want.tokens, `the answer before it (${s.tokens.length} tokens) equals the full-forward decode`);
  t.ok(s.tokens.length <= 5 && !s.tokens.includes(stopId), 'the stop token ends the answer and is not part of it');
  ref.close();
});

t.test('sampling: a fixed seed gives the same tokens, another seed others', async (t) => {
  await fixture();
  const go = (seed: number) => JSON.parse(chatCli(['--prompt', 'tell me a story', '--json', '--seed', String(seed)], { temperature: 1.5, top_p: 1, top_k: 0 }).stdout) as JsonAnswer;
  const a = go(7), b = go(7), c = go(8);
  t.same(a.tokens, b.tokens, `seed 7 twice: ${a.tokens.join(' ')}`);
  t.not(a.tokens.join(' '), c.tokens.join(' '), `seed 8: ${c.tokens.join(' ')}`);
});

t.test('interactive: one answer per line, `clear` forgets the history, `exit` leaves', async (t) => {
  await fixture();
  const one = JSON.parse(chatCli(['--prompt', 'hi', '--json', '--do_sample', 'false']).stdout) as JsonAnswer;
  const r = chatCli(['--do_sample', 'false'], {}, 'hi\nclear\nhi\nexit\nnever read\n');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /`clear` forgets the history, `exit` leaves/);
  const answers = r.stdout.split('Assistant: ').slice(1).map((s) => s.split('\n\nUser: ')[0]);
  t.same(answers, [one.text, one.text], 'the same message after `clear` gets the one-shot answer again');
  t.match(r.stdout, /History has been removed\./);
  t.notMatch(r.stdout, /never read/);
  const eof = chatCli(['--do_sample', 'false'], {}, 'hi\n');
  t.equal(eof.status, 0, 'end of input leaves');
  t.equal(eof.stdout.split('Assistant: ').length, 2, 'after answering the one line');
});

t.test('bad input exits 2', async (t) => {
  await fixture();
  const j = chatCli(['--json']);
  t.equal(j.status, 2);
  t.match(j.stderr, /--json needs --prompt/);
  const w = chatCli(['--prompt', 'x'], { model_name_or_path: 'examples/models/tiny', adapter_name_or_path: 'null' });
  t.equal(w.status, 2);
  t.match(w.stderr, /model_name_or_path: .*holds no weights/);
  const f = chatCli(['--prompt', 'x', '--top_p', '0']);
  t.equal(f.status, 2);
  t.match(f.stderr, /top_p: is out of range/);
});
