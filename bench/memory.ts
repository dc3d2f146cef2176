/**
 * `bench memory [--model M] [--sp P] [--zero S] [--lengths a,b,c] [--untiled-mlp] [--checkpointing]
 * [--doc-tokens N] [--check L]`:
 * one whole training step at three sequence lengths, each in fresh rank processes (peak RSS is a
 * process's lifetime high-water mark), P ranks splitting the sequence (Ulysses) with the AdamW
 * moments sharded as ZeRO S. Reports per rank the measured peak RSS and its parts (baseline
 * process, parameters, gradients, optimizer, activations, communication buffers), a fitted
 * bytes-per-token line (peak = a + b x tokens), the longest sequence that fits in this machine's
 * memory and in 24 GiB by that line, and the same question asked of resourceEstimate.ts for an
 * H200 with Llama-3.1-8B (SP 8, ZeRO 3, bf16, checkpointing, tiled MLP and loss) beside ALST's
 * published figures, and what a full-FT dpo/kto reference copy adds to that plan per rank (none with
 * precompute_ref_log_probs). --doc-tokens packs documents of N tokens (attention then costs O(s N), not
 * O(s^2)); --check runs one more step at length L after the fit and prints its measured peak
 * beside the fit's prediction. Must never run two lengths at the same time (they would share memory).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { estimateRankMemory, formatBytes, machineMemory, type ModelDims } from '../src/train/resourceEstimate.js';
import { packageRoot } from '../src/util/packageRoot.js';
import type { BenchResult, Benchmark } from './types.js';

interface RankResult {
  rank: number;
  localTokens: number;
  stepSeconds: number;
  peakRssBytes: number;
  /** parameters + gradients + optimizer state held (ZeRO 3: with the pieces gathered at once), and stage 0's */
  stateBytes: number;
  stage0StateBytes: number;
  parts: Record<string, number>;
  rssNow?: Record<string, number>;
  error?: { code?: string; message: string };
}

interface MemoryOptions {
  config: string;
  sp: number;
  zero: number;
  seqs: number[];
  tiledMlp: boolean;
  checkpointing: boolean;
  /** documents of this many tokens packed into each sequence (0: one document) */
  docTokens: number;
  /** after the fit, one more step at this length, measured against the fit's prediction */
  check?: number;
}

function runRanks(o: MemoryOptions, seq: number): Promise<RankResult[]> {
  const script = fileURLToPath(new URL('./memoryRank.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'ua-bench-memory-'));
  const threads = Math.max(1, Math.floor(availableParallelism() / o.sp));
  const children = Array.from({ length: o.sp }, (_, rank) => {
    const arg = { rank, sp: o.sp, dir, config: o.config, seq, zero: o.zero, tiledMlp: o.tiledMlp, checkpointing: o.checkpointing, threads, docTokens: o.docTokens };
    return spawn(process.execPath, [script, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  });
  // a failed rank leaves its peers waiting in a collective: they are stopped with it
  const stopAll = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  const done = children.map((child, rank) => new Promise<RankResult>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      const m = /^result (.*)$/m.exec(out);
      const r = m ? (JSON.parse(m[1]!) as RankResult) : undefined;
      if (!r || r.error || code !== 0) reject(new Error(`bench memory s=${seq}: rank ${rank} failed (exit ${code}): ${r ? JSON.stringify(r.error) : out.slice(-500)}`));
      else resolve(r);
    });
  }));
  return Promise.all(done).catch((e: unknown) => {
    stopAll();
    throw e;
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Least squares y = a + b x. */
function fitLine(xs: number[], ys: number[]): { a: number; b: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const b = sxx > 0 ? sxy / sxx : 0;
  return { a: my - b * mx, b };
}

// Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json) and an H200's 141 GB of HBM3e.
const LLAMA31_8B: ModelDims = { vocab: 128256, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128, tied: false };
const H200_BYTES = 141e9;
// ALST (Arctic Long Sequence Training, 2025) for Llama-8B on H100s (80 GB), with ZeRO-3, tiled
// MLP and loss, and activation checkpoints offloaded to CPU memory.
const ALST = [{ gpus: 1, tokens: 500_000 }, { gpus: 8, tokens: 3_700_000 }];

/** Longest cutoff_len (a multiple of 1024) whose estimate fits `bytes` per rank. */
function longestByEstimate(sp: number, bytes: number): { tokens: number; parts: { name: string; bytes: number }[] } {
  const at = (len: number) => {
    const e = estimateRankMemory({ dims: LLAMA31_8B, finetuning: 'full', loraRank: 8, stage: 'pt', bf16: true, cutoffLen: len, sp, batch: 1, zeroStage: 3, world: sp, tiledMlp: true, lossChunkTokens: 512 });
    const activations = e.parts[e.parts.length - 1]!.bytes;
    const parts = [...e.parts.slice(0, -1), { name: 'activations (per-layer checkpointing)', bytes: e.checkpointedActivationBytes }];
    return { total: e.totalBytes - activations + e.checkpointedActivationBytes, parts };
  };
  let lo = 0;
  let hi = 1 << 16; // units of 1024 tokens
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (at(mid * 1024).total <= bytes) lo = mid;
    else hi = mid;
  }
  return { tokens: lo * 1024, parts: at(Math.max(lo, 1) * 1024).parts };
}

/** Full-FT dpo on the plan at 4096 tokens: per rank with the frozen reference copy and with precompute_ref_log_probs. */
function referencePlan(sp: number): { copyBytes: number; residentBytes: number; precomputedBytes: number } {
  const at = (precomputedReference: boolean) => estimateRankMemory({ dims: LLAMA31_8B, finetuning: 'full', loraRank: 8, stage: 'dpo', bf16: true, cutoffLen: 4096, sp, batch: 1, zeroStage: 3, world: sp, tiledMlp: true, lossChunkTokens: 512, precomputedReference });
  const resident = at(false);
  return { copyBytes: resident.parts.find((p) => p.name === 'DPO reference copy')?.bytes ?? 0, residentBytes: resident.totalBytes, precomputedBytes: at(true).totalBytes };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const GIB24 = 24 * 2 ** 30;

export async function runMemory(o: MemoryOptions, log: (line: string) => void): Promise<BenchResult> {
  const mem = machineMemory();
  log(`memory: ${o.config}, sp ${o.sp}, ZeRO ${o.zero}, tiled MLP ${o.tiledMlp ? 'on' : 'off'}, checkpointing ${o.checkpointing ? 'on' : 'off'}; one training step per length in fresh processes (the machine is shared: figures are indicative)`);
  const rows: { seq: number; peak: number; ranks: RankResult[] }[] = [];
  for (const seq of o.seqs) {
    const ranks = await runRanks(o, seq);
    const peak = Math.max(...ranks.map((r) => r.peakRssBytes));
    rows.push({ seq, peak, ranks });
    const p = ranks[0]!.parts;
    log(`  s=${seq}: peak RSS per rank ${ranks.map((r) => mib(r.peakRssBytes)).join(', ')}; rank 0: ${Object.entries(p).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}; step ${Math.max(...ranks.map((r) => r.stepSeconds)).toFixed(2)} s`);
    log(`    parameters + gradients + optimizer per rank: ${ranks.map((r) => mib(r.stateBytes)).join(', ')} = ${(Math.max(...ranks.map((r) => r.stateBytes)) / ranks[0]!.stage0StateBytes).toFixed(3)} x stage 0's ${mib(ranks[0]!.stage0StateBytes)}`);
    const now = ranks[0]!.rssNow;
    if (now) log(`    rank 0 resident after the step: ${Object.entries(now).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}`);
  }
  const fit = fitLine(rows.map((r) => r.seq), rows.map((r) => r.peak));
  const check = o.check ? await checkFit(o, o.check, fit, log) : undefined;
  // o.sp ranks run on this host: each gets 1/sp of the memory
  const longest = (bytes: number) => (fit.b > 0 ? Math.floor((bytes / o.sp - fit.a) / fit.b) : Infinity);
  const here = longest(mem.bytes);
  const in24 = longest(GIB24);
  log(`  fit: peak RSS per rank = ${mib(fit.a)} + ${(fit.b / 1024).toFixed(2)} KiB x sequence tokens (${(fit.b * o.sp / 1024).toFixed(2)} KiB per token held by a rank)`);
  log(`  longest sequence that fits: ${here.toLocaleString('en-US')} tokens in this machine's ${formatBytes(mem.bytes)} (${mem.source}); ${in24.toLocaleString('en-US')} tokens in 24 GiB (sp ${o.sp} ranks on one host)`);
  const plan = longestByEstimate(8, H200_BYTES);
  log(`  plan: 8 x H200 (${formatBytes(H200_BYTES)} each), Llama-3.1-8B, SP 8, ZeRO 3, bf16, checkpointing, tiled MLP and loss: longest sequence ${plan.tokens.toLocaleString('en-US')} tokens by resourceEstimate.ts`);
  log(`    per rank: ${plan.parts.map((p) => `${p.name} ${formatBytes(p.bytes)}`).join(', ')}`);
  log(`    ALST (H100 80 GB, checkpoints offloaded to CPU memory): ${ALST.map((a) => `${a.tokens.toLocaleString('en-US')} tokens on ${a.gpus} GPU(s)`).join(', ')}`);
  const pref = referencePlan(8);
  log(`    full-FT dpo/kto on that plan: the frozen reference copy (sharded like the weights) adds ${formatBytes(pref.copyBytes)} per rank; with precompute_ref_log_probs none (${formatBytes(pref.residentBytes)} -> ${formatBytes(pref.precomputedBytes)} per rank at 4096 tokens)`);
  return {
    bench: 'memory', config: o.config, sp: o.sp, zero: o.zero, tiled_mlp: o.tiledMlp, checkpointing: o.checkpointing,
    lengths: rows.map((r) => ({ seq: r.seq, peak_rss_bytes: r.peak, ranks: r.ranks })),
    // parameters + gradients + optimizer per rank (the largest) over stage 0's of the same model
    state_ratio_vs_stage0: Math.max(...rows[0]!.ranks.map((r) => r.stateBytes)) / rows[0]!.ranks[0]!.stage0StateBytes,
    fit_bytes: fit.a, fit_bytes_per_token: fit.b,
    machine_bytes: mem.bytes, longest_here: here, longest_24gib: in24,
    h200_plan: { gpus: 8, sp: 8, zero: 3, longest_tokens: plan.tokens, parts: plan.parts, preference_reference: pref }, alst: ALST,
    doc_tokens: o.docTokens, ...(check ? { check } : {}),
  };
}

/** --model: a name under examples/models, a model directory or a config.json. */
function modelConfigPath(m: string): string {
  const named = join(packageRoot(), 'examples', 'models', m, 'config.json');
  if (/^[\w.-]+$/.test(m) && existsSync(named)) return named;
  if (existsSync(m)) return statSync(m).isDirectory() ? join(m, 'config.json') : m;
  throw new Error(`bench memory: --model ${m} is neither a name under examples/models nor a model directory or config.json`);
}

/** One step at `seq`, not part of the fit: its measured peak RSS per rank against the fit's prediction. */
async function checkFit(o: MemoryOptions, seq: number, fit: { a: number; b: number }, log: (line: string) => void) {
  const ranks = await runRanks(o, seq);
  const peak = Math.max(...ranks.map((r) => r.peakRssBytes));
  const predicted = fit.a + fit.b * seq;
  const seconds = Math.max(...ranks.map((r) => r.stepSeconds));
  const relative = (peak - predicted) / predicted;
  log(`  check s=${seq}: one optimizer step in ${seconds.toFixed(1)} s; peak RSS per rank ${ranks.map((r) => mib(r.peakRssBytes)).join(', ')} measured, ${mib(predicted)} predicted by the fit (${(relative * 100).toFixed(1)}%)`);
  return { seq, peak_rss_bytes: peak, predicted_bytes: predicted, relative_error: relative, step_seconds: seconds, ranks };
}

function positiveInt(what: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`bench memory: ${what} must be a positive integer, got ${v}`);
  return n;
}

export const memoryBench: Benchmark = {
  options: {
    model: { type: 'string', default: 'tiny' },
    sp: { type: 'string', default: '2' },
    zero: { type: 'string', default: '1' },
    lengths: { type: 'string' },
    'untiled-mlp': { type: 'boolean', default: false },
    checkpointing: { type: 'boolean', default: false },
    'doc-tokens': { type: 'string', default: '0' },
    check: { type: 'string' },
  },
  async run(opts, log) {
    const sp = positiveInt('--sp', String(opts.sp));
    const zero = Number(opts.zero);
    if (zero !== 0 && zero !== 1 && zero !== 2 && zero !== 3) throw new Error(`bench memory: --zero must be 0, 1, 2 or 3 (1 partitions the AdamW moments, 2 the gradients too, 3 the parameters too), got ${String(opts.zero)}`);
    const seqs = typeof opts.lengths === 'string' ? opts.lengths.split(',').map((v) => positiveInt('--lengths', v.trim())) : [4096, 8192, 16384];
    if (seqs.length < 2) throw new Error('bench memory: --lengths needs at least two lengths for the fit');
    for (const s of seqs) if (s % sp !== 0) throw new Error(`bench memory: length ${s} must be a multiple of --sp ${sp}`);
    const docTokens = opts['doc-tokens'] === undefined || opts['doc-tokens'] === '0' ? 0 : positiveInt('--doc-tokens', String(opts['doc-tokens']));
    const check = typeof opts.check === 'string' ? positiveInt('--check', opts.check) : undefined;
    if (check !== undefined && check % sp !== 0) throw new Error(`bench memory: --check ${check} must be a multiple of --sp ${sp}`);
    return runMemory({ config: modelConfigPath(String(opts.model)), sp, zero, seqs, tiledMlp: opts['untiled-mlp'] !== true, checkpointing: opts.checkpointing === true, docTokens, check }, log);
  },
};
