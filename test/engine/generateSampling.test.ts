// generate() and the sampling rules. Greedy generation through the KV cache produces exactly the
// tokens of a test-side greedy decode that runs a FULL forward over the whole sequence for every
// new token (Model.forward's argmax at the last position): the KV cache equals recompute. The
// same seed gives the same sampled tokens, another seed others; sampled frequencies follow the
// fp64 softmax of logits / temperature (within 5 standard deviations over 20000 keyed draws);
// top-k keeps the k highest (ties of the k-th included), top-p the smallest head whose
// probability reaches top_p; the repetition penalty divides positive and multiplies negative
// logits of tokens already seen; stop tokens, max_new_tokens and the abort signal end an answer;
// a second call reuses the cached prefix and continues as a fresh session would.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { InferSession, generate, sampleToken, uniformDraw, type GenerateOptions } from '../../src/engine/generate/index.js';
import { lcg } from '../helpers/packedBatch.js';

const HF = {
  model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, rms_norm_eps: 1e-5, initializer_range: 0.3,
};
const GREEDY: GenerateOptions = { doSample: false, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, seed: 0, maxNewTokens: 24, stopTokens: [] };

function prompt(n: number, vocab: number, seed: number): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** Greedy decoding by full forwards: every step runs the whole sequence again. */
async function greedyByRecompute(m: Model, start: number[], steps: number): Promise<number[]> {
  const seq = [...start];
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const n = seq.length;
    const argmax = new Int32Array(n);
    await m.forward({ tokens: Int32Array.from(seq), labels: new Int32Array(n).fill(-100), normalizer: 1, tokenArgmax: argmax });
    out.push(argmax[n - 1]!);
    seq.push(argmax[n - 1]!);
  }
  return out;
}

t.test('greedy generation with the KV cache equals greedy decoding by full forwards', async (t) => {
  for (const hf of [HF, { ...HF, model_type: 'qwen3', head_dim: 16 }, { ...HF, model_type: 'mistral', sliding_window: 12 }]) {
    const m = await Model.create(parseModelConfig(hf), { seed: 5 });
    const p = prompt(17, 64, 3);
    const want = await greedyByRecompute(m, p, 24);
    const s = new InferSession(m);
    const got = await generate(s, p, GREEDY);
    t.same(got.tokens, want, `${hf.model_type}: 24 greedy tokens equal the full-forward decode (${want.join(' ')})`);
    t.equal(got.finish, 'length');
    t.equal(s.length, p.length + 23, 'the cache holds the prompt and every answer token but the last (never run)');
    s.close();
    m.close();
  }
});

t.test('seeded sampling: the same seed gives the same tokens, another seed others; temperature 0 is greedy', async (t) => {
  const m = await Model.create(parseModelConfig(HF), { seed: 5 });
  const p = prompt(9, 64, 4);
  const o: GenerateOptions = { ...GREEDY, doSample: true, temperature: 1.3, topP: 0.95, topK: 40, seed: 1234, maxNewTokens: 20 };
  const a = await generate(new InferSession(m), p, o);
  const b = await generate(new InferSession(m), p, o);
  const c = await generate(new InferSession(m), p, { ...o, seed: 1235 });
  t.same(a.tokens, b.tokens, `seed 1234 twice: ${a.tokens.join(' ')}`);
  t.not(a.tokens.join(' '), c.tokens.join(' '), `seed 1235: ${c.tokens.join(' ')}`);
  const g = await generate(new InferSession(m), p, GREEDY);
  const z = await generate(new InferSession(m), p, { ...o, temperature: 0, maxNewTokens: 24 });
  t.same(z.tokens, g.tokens, 'do_sample with temperature 0 decodes greedily');
  m.close();
});

t.test('sampling frequencies follow softmax(logits / T) of the kept candidates', async (t) => {
  const logits = Float32Array.of(1.0, 2.5, -0.5, 2.4, 0.3, 2.5, -3, 1.7);
  const draws = 20000;
  const check = (label: string, o: Parameters<typeof sampleToken>[2], kept: number[]) => {
    const w = kept.map((i) => Math.exp(logits[i]! / o.temperature));
    const z = w.reduce((a, b) => a + b, 0);
    const count = new Map<number, number>();
    for (let i = 0; i < draws; i++) {
      const id = sampleToken(logits, new Set(), o, i);
      count.set(id, (count.get(id) ?? 0) + 1);
    }
    t.same([...count.keys()].sort((a, b) => a - b), [...kept].sort((a, b) => a - b), `${label}: exactly ids ${kept.join(',')} are drawn`);
    let worst = 0;
    kept.forEach((id, j) => {
      const p = w[j]! / z;
      const sd = Math.sqrt((p * (1 - p)) / draws);
      worst = Math.max(worst, Math.abs((count.get(id) ?? 0) / draws - p) / sd);
    });
    t.ok(worst < 5, `${label}: every frequency within ${worst.toFixed(2)} < 5 standard deviations of its fp64 probability`);
  };
  const base = { doSample: true, temperature: 0.8, topP: 1, topK: 0, repetitionPenalty: 1, seed: 77 };
  check('no filter, T 0.8', base, [0, 1, 2, 3, 4, 5, 6, 7]);
  check('top_k 1 (the largest value 2.5 is shared by ids 1 and 5: both kept, as HF keeps ties of the k-th)', { ...base, topK: 1 }, [1, 5]);
  check('top_k 3', { ...base, topK: 3 }, [1, 5, 3]);
  // T 1: p(1) = p(5) = 0.276, p(3) = 0.250, p(7) = 0.125 ...: 0.6 is reached by the third token
  check('top_p 0.6, T 1', { ...base, temperature: 1, topP: 0.6 }, [1, 5, 3]);
  check('top_p 0.5, T 1 (0.552 after two tokens)', { ...base, temperature: 1, topP: 0.5 }, [1, 5]);
  check('top_k 3 then top_p 0.6', { ...base, temperature: 1, topK: 3, topP: 0.6 }, [1, 5]);
});

t.test('repetition penalty (HF): seen tokens\' positive logits divided, negative ones multiplied', async (t) => {
  const logits = Float32Array.of(2.0, 1.9, -1.0, -1.1);
  const greedy = { doSample: false, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1.2, seed: 0 };
  t.equal(sampleToken(logits, new Set(), greedy, 0), 0, 'nothing seen: the argmax');
  t.equal(sampleToken(logits, new Set([0]), greedy, 0), 1, '2.0 / 1.2 = 1.67 < 1.9');
  const neg = Float32Array.of(-1.0, -1.1);
  t.equal(sampleToken(neg, new Set([0]), greedy, 0), 1, '-1.0 * 1.2 = -1.2 < -1.1');
  t.equal(logits[0], 2.0, 'the logits are not modified');
});

t.test('stop tokens, max_new_tokens, abort, prefix reuse', async (t) => {
  const m = await Model.create(parseModelConfig(HF), { seed: 8 });
  const p = prompt(12, 64, 6);
  const full = await generate(new InferSession(m), p, GREEDY);
  const stopAt = full.tokens.findIndex((x, i) => full.tokens.indexOf(x) === i && i >= 3);
  const stop = full.tokens[stopAt]!;
  const r = await generate(new InferSession(m), p, { ...GREEDY, stopTokens: [stop] });
  t.equal(r.finish, 'stop');
  t.equal(r.stopToken, stop);
  t.same(r.tokens, full.tokens.slice(0, stopAt), `ends before the first ${stop} (answer of ${stopAt} tokens, stop token excluded)`);
  const short = await generate(new InferSession(m), p, { ...GREEDY, maxNewTokens: 5 });
  t.same(short.tokens, full.tokens.slice(0, 5));
  t.equal(short.finish, 'length');
  const ac = new AbortController();
  const streamed: number[] = [];
  const ab = await generate(new InferSession(m), p, { ...GREEDY, signal: ac.signal, onToken: (id) => { streamed.push(id); if (streamed.length === 4) ac.abort(); } });
  t.equal(ab.finish, 'aborted');
  t.same(ab.tokens, full.tokens.slice(0, 4), 'tokens are reported as they come; the abort ends the answer');
  t.same(streamed, ab.tokens);
  // a second turn on the same session: the prompt extends the first prompt and answer
  const s = new InferSession(m);
  const first = await generate(s, p, { ...GREEDY, maxNewTokens: 6 });
  const next = [...p, ...first.tokens, 3, 4, 5];
  const second = await generate(s, next, GREEDY);
  t.equal(second.reusedTokens, p.length + 5, 'the cached prompt and answer (all but the never-run last token) are reused');
  const fresh = await generate(new InferSession(m), next, GREEDY);
  t.same(second.tokens, fresh.tokens, 'and it continues as a fresh session does');
  await t.rejects(generate(s, [], GREEDY), { code: 'ERR_ARG' }, 'an empty prompt');
  await t.rejects(generate(s, [64], GREEDY), { code: 'ERR_ARG' }, 'an id outside the vocabulary');
  await t.rejects(generate(s, p, { ...GREEDY, topP: 0 }), { code: 'ERR_ARG' }, 'top_p 0');
  await t.rejects(generate(s, p, { ...GREEDY, maxNewTokens: 0 }), { code: 'ERR_ARG' }, 'max_new_tokens 0');
  m.close();
});

t.test('uniformDraw: in (0, 1), keyed by seed, stream and index', async (t) => {
  const xs = Array.from({ length: 1000 }, (_, i) => uniformDraw(9, 0, i));
  t.ok(xs.every((x) => x > 0 && x < 1), 'every draw in (0, 1)');
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  t.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean.toFixed(3)}`);
  t.equal(uniformDraw(9, 0, 5), xs[5], 'the same key: the same draw');
  t.not(uniformDraw(9, 1, 5), xs[5], 'another stream');
  t.not(uniformDraw(10, 0, 5), xs[5], 'another seed');
  t.not(uniformDraw(9 + 2 ** 32, 0, 5), xs[5], 'seeds past 32 bits');
});
