/**
 * Autoregressive generation over an InferSession: reuses the longest cached prefix of the
 * prompt, prefills the rest (one native call), then produces one token per step (one native call
 * each) until a stop token, max_new_tokens or the abort signal. Tokens are reported as they come
 * (`onToken`), so a caller can stream them. The session keeps prompt + answer cached for the next
 * call (a chat's next turn prefills only its new tokens); a stop token ends the answer without
 * being run. Must never hold the event loop during model math (every step awaits the worker).
 */
import { EngineError } from '../errors.js';
import type { InferSession } from './InferSession.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** >= 1 */
  maxNewTokens: number;
  /** ids that end the answer (not included in it) */
  stopTokens: readonly number[];
  /** keys the draws of this call apart from other calls with the same seed (e.g. the chat turn) */
  stream?: number;
  /** called with each new token before the next step starts; may return a promise (awaited) */
  onToken?: (id: number) => void | Promise<void>;
  signal?: AbortSignal;
}

export interface GenerateResult {
  /** the answer's tokens (without the stop token) */
  tokens: number[];
  finish: 'stop' | 'length' | 'aborted';
  /** the stop token that ended it (finish 'stop') */
  stopToken: number | null;
  /** prompt tokens taken from the cache instead of being recomputed */
  reusedTokens: number;
}

/** Longest common prefix of the cached tokens and the prompt, leaving at least one prompt token to run. */
function reusable(cached: Int32Array, prompt: readonly number[]): number {
  let i = 0;
  const end = Math.min(cached.length, prompt.length - 1);
  while (i < end && cached[i] === prompt[i]) i++;
  return i;
}

export async function generate(session: InferSession, prompt: readonly number[], o: GenerateOptions): Promise<GenerateResult> {
  checkSampling(o);
  if (prompt.length < 1) throw new EngineError('ERR_ARG', 'generate: the prompt must hold at least one token');
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) throw new EngineError('ERR_ARG', `generate: max_new_tokens must be an integer >= 1, got ${o.maxNewTokens}`);
  for (const id of [...prompt, ...o.stopTokens]) {
    if (!Number.isInteger(id) || id < 0 || id >= session.vocabSize) throw new EngineError('ERR_ARG', `generate: token id ${id} is outside [0, ${session.vocabSize})`);
  }
  const stops = new Set(o.stopTokens);
  const keep = reusable(session.tokens(), prompt);
  session.truncate(keep);
  const seen = new Set<number>(prompt);
  const out: number[] = [];
  const logits = new Float32Array(session.vocabSize);
  await session.append(prompt.slice(keep), { logits });
  for (let step = 0; ; step++) {
    if (o.signal?.aborted) return { tokens: out, finish: 'aborted', stopToken: null, reusedTokens: keep };
    const id = sampleToken(logits, seen, o, step, o.stream ?? 0);
    if (stops.has(id)) return { tokens: out, finish: 'stop', stopToken: id, reusedTokens: keep };
    out.push(id);
    seen.add(id);
    await o.onToken?.(id);
    if (out.length >= o.maxNewTokens) return { tokens: out, finish: 'length', stopToken: null, reusedTokens: keep };
    await session.append([id], { logits });
  }
}
