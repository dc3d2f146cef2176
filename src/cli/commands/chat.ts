/**
 * `ulysses-actors chat [job.yaml] [--prompt TEXT] [--json] [--system TEXT] [--KEY VALUE ...]`:
 * talks to model_name_or_path with adapter_name_or_path merged (as `llamafactory-cli chat`),
 * through the template's prompt layout, generating with the native KV cache and streaming the
 * answer as it comes. Interactive by default (a line per user message; `clear` forgets the
 * history, `exit` or end of input leaves, Ctrl-C stops an answer and, at the prompt, leaves with
 * 130); `--prompt TEXT` answers once and exits (`--json`: one JSON line with the token ids, for
 * scripts and tests). Sampling follows do_sample, temperature, top_p, top_k, max_new_tokens,
 * repetition_penalty and seed (each turn draws from its own stream of the seed). Never writes files.
 */
import { createInterface } from 'node:readline';
import { formatIgnored, resolveJob, type JobConfig } from '../../config/index.js';
import { InferSession, generate, type GenerateResult, type SamplingOptions } from '../../engine/generate/index.js';
import type { Turn } from '../../train/data/formats.js';
import { chatPromptIds, stopTokenIds, TextStream } from '../../train/chat/index.js';
import { loadMergedModel } from '../../train/mergedModel.js';
import { loadTokenizer, type TextTokenizer } from '../../train/tokenizer/index.js';
import { UsageError } from '../UsageError.js';

const HELP = `usage: ulysses-actors chat [job.yaml] [--prompt TEXT] [--json] [--system TEXT] [--KEY VALUE ...]
  Loads model_name_or_path (+ adapter_name_or_path, merged), lays the conversation out with
  template and answers with a KV cache, streaming the text.
  --prompt TEXT   answer TEXT once and exit (without it: an interactive chat on stdin)
  --json          with --prompt: print {"prompt_tokens", "tokens", "text", "finish"} as one line
  --system TEXT   the system prompt (default: the template's)
  Interactive: \`clear\` forgets the history, \`exit\` (or end of input) leaves, Ctrl-C stops an answer.
  Sampling keys: do_sample, temperature (0: greedy), top_p, top_k, max_new_tokens,
  repetition_penalty, seed; e.g. --do_sample false for greedy decoding.`;

interface Chat {
  tok: TextTokenizer;
  session: InferSession;
  config: JobConfig;
  system: string | null;
  stops: number[];
  sampling: SamplingOptions;
}

async function answer(chat: Chat, history: readonly Turn[], user: string, turn: number, write: ((s: string) => void) | null, signal?: AbortSignal): Promise<{ prompt: number[]; result: GenerateResult; text: string }> {
  const prompt = chatPromptIds(chat.tok, chat.config.template, chat.system, history, user);
  const ts = new TextStream(chat.tok);
  const result = await generate(chat.session, prompt, {
    ...chat.sampling,
    maxNewTokens: chat.config.max_new_tokens,
    stopTokens: chat.stops,
    stream: turn,
    signal,
    onToken: (id) => {
      const piece = ts.push(id);
      if (write) write(piece);
    },
  });
  const rest = ts.end();
  if (write) write(rest);
  return { prompt, result, text: ts.text };
}

async function interactive(chat: Chat): Promise<number> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  let generating: AbortController | null = null;
  let interrupted = false;
  const onInterrupt = (): void => {
    if (generating) generating.abort();
    else {
      interrupted = true;
      rl.close();
    }
  };
  rl.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);
  const out = (s: string): void => void process.stdout.write(s);
  process.stderr.write('Type a message and press enter; `clear` forgets the history, `exit` leaves.\n');
  let history: Turn[] = [];
  let turn = 0;
  out('User: ');
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === 'exit') break;
      if (text === 'clear') {
        history = [];
        out('History has been removed.\nUser: ');
        continue;
      }
      if (text === '') {
        out('User: ');
        continue;
      }
      out('Assistant: ');
      generating = new AbortController();
      const r = await answer(chat, history, text, turn++, out, generating.signal);
      generating = null;
      history.push({ user: text, assistant: r.text });
      out(r.result.finish === 'aborted' ? ' [stopped]\n\nUser: ' : '\n\nUser: ');
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    rl.close();
  }
  if (!interrupted) out('\n');
  return interrupted ? 130 : 0;
}

export async function chatCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { job, command, ignored } = resolveJob(argv, { env: process.env, commandFlags: { prompt: 'string', system: 'string', json: 'bool' } });
  const note = formatIgnored(ignored);
  if (note) process.stderr.write(note + '\n');
  if (command.json && typeof command.prompt !== 'string') throw new UsageError('--json needs --prompt TEXT (the interactive chat prints text)');
  const c = job.config;
  const { model, modelDir } = await loadMergedModel(c);
  try {
    const tok = await loadTokenizer(modelDir, model.config.vocabSize);
    const chat: Chat = {
      tok,
      session: new InferSession(model),
      config: c,
      system: typeof command.system === 'string' ? command.system : null,
      stops: stopTokenIds(tok, c.template, modelDir),
      sampling: { doSample: c.do_sample, temperature: c.temperature, topP: c.top_p, topK: c.top_k, repetitionPenalty: c.repetition_penalty, seed: c.seed },
    };
    if (typeof command.prompt !== 'string') return await interactive(chat);
    if (command.json) {
      const r = await answer(chat, [], command.prompt, 0, null);
      process.stdout.write(JSON.stringify({ prompt_tokens: r.prompt, tokens: r.result.tokens, text: r.text, finish: r.result.finish, stop_token: r.result.stopToken }) + '\n');
    } else {
      await answer(chat, [], command.prompt, 0, (s) => void process.stdout.write(s));
      process.stdout.write('\n');
    }
    return 0;
  } finally {
    model.close();
  }
}
