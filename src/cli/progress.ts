/**
 * `up`'s progress display: on a terminal one line redrawn in place (step/total, a bar, loss,
 * tokens/s, ETA); elsewhere one plain line per logging step (every `everySteps` steps, the first
 * and the last). Everything else that reaches the terminal goes through it: notes (failures,
 * restarts, evaluations), this process's log lines and the output of the agents and ranks, whole
 * lines only; on a terminal the bar is cleared before them and redrawn after, so no line is ever
 * glued to the bar. Rates come from the time between step reports (the injected `now`), smoothed
 * so one slow step does not swing the ETA. Never throws; never reads job state itself.
 */
import { StringDecoder } from 'node:string_decoder';
import type { EvalRow, MetricsRow } from '../actors/coordinator/StepAggregator.js';
import type { LogSink } from '../util/Logger.js';

export interface ProgressOptions {
  write: (text: string) => void;
  tty: boolean;
  /** total optimizer steps, or null when unknown */
  total: number | null;
  everySteps: number;
  now?: () => number;
  /** terminal width for the bar line */
  columns?: number;
  /** where child processes' stderr lines go (default: write) */
  writeErr?: (text: string) => void;
}

/** The line an evaluation prints: its eval_* figures (throughput and epoch left to metrics.jsonl). */
export function evalLine(row: EvalRow): string {
  const skip = new Set(['step', 'restarts', 'epoch', 'eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']);
  const figures = Object.entries(row)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k} ${typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(5)) : String(v)}`);
  const took = typeof row.eval_runtime === 'number' ? ` (${row.eval_runtime.toFixed(1)} s)` : '';
  return `eval after step ${row.step}: ${figures.join(', ')}${took}`;
}

/** A Logger sink that prints through the display (stderr), formatted as the default sink does. */
export function logSink(p: ProgressDisplay): LogSink {
  return (r) => {
    const f = r.fields && Object.keys(r.fields).length ? ' ' + JSON.stringify(r.fields) : '';
    p.output('stderr', `${r.time} ${r.level.padEnd(5)} [${r.scope}] ${r.msg}${f}\n`);
  };
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '?';
  return x >= 1e4 ? `${(x / 1000).toFixed(1)}k` : x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export class ProgressDisplay {
  private readonly now: () => number;
  private lastAt: number | null = null;
  private lastStep = 0;
  private secPerStep: number | null = null;
  private tokPerS: number | null = null;
  private shown = '';
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly partial = { stdout: '', stderr: '' };

  constructor(private readonly o: ProgressOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** A metrics.jsonl row arrived (step, loss, tokens, tokens_per_s?, ...). */
  step(row: Pick<MetricsRow, 'step' | 'loss' | 'tokens'> & { tokens_per_s?: MetricsRow[string]; restarts?: number }): void {
    const { step } = row;
    const t = this.now();
    if (this.lastAt !== null && step > this.lastStep) {
      const dt = (t - this.lastAt) / 1000 / (step - this.lastStep);
      this.secPerStep = this.secPerStep === null ? dt : 0.7 * this.secPerStep + 0.3 * dt;
      const tps = typeof row.tokens_per_s === 'number' ? row.tokens_per_s : Number(row.tokens) / Math.max(dt, 1e-9);
      this.tokPerS = this.tokPerS === null ? tps : 0.7 * this.tokPerS + 0.3 * tps;
    }
    this.lastAt = t;
    this.lastStep = step;
    const line = this.render(step, row.loss, row.restarts);
    if (this.o.tty) this.draw(line);
    else if (step % this.o.everySteps === 0 || step === this.o.total || step === 1) this.o.write(line + '\n');
  }

  /** A line to keep (failures, restarts): above the bar on a terminal. */
  note(text: string): void {
    if (this.o.tty && this.shown) this.o.write('\r\x1b[K' + text + '\n' + this.shown);
    else this.o.write(text + '\n');
  }

  /**
   * Output of a child process (or a log line): on a terminal whole lines only, above the bar;
   * elsewhere passed through as it comes.
   */
  output(stream: 'stdout' | 'stderr', chunk: Buffer | string): void {
    const write = stream === 'stderr' ? (this.o.writeErr ?? this.o.write) : this.o.write;
    const text = typeof chunk === 'string' ? chunk : this.decoders[stream].write(chunk);
    if (!this.o.tty) {
      if (text) write(text);
      return;
    }
    const all = this.partial[stream] + text;
    const cut = all.lastIndexOf('\n');
    if (cut < 0) {
      this.partial[stream] = all;
      return;
    }
    this.partial[stream] = all.slice(cut + 1);
    if (this.shown) this.o.write('\r\x1b[K');
    write(all.slice(0, cut + 1));
    if (this.shown) this.o.write(this.shown);
  }

  /** Ends the bar line (call before the final report); prints what is left of partial output lines. */
  end(): void {
    if (this.o.tty && this.shown) this.o.write('\n');
    this.shown = '';
    for (const s of ['stdout', 'stderr'] as const) {
      const rest = this.partial[s] + this.decoders[s].end();
      this.partial[s] = '';
      if (rest) (s === 'stderr' ? (this.o.writeErr ?? this.o.write) : this.o.write)(rest + '\n');
    }
  }

  private render(step: number, loss: number, restarts?: number): string {
    const total = this.o.total;
    const parts = [`step ${step}/${total ?? '?'}`];
    if (this.o.tty && total) {
      const width = 20;
      const filled = Math.min(width, Math.round((step / total) * width));
      parts.push(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`);
    }
    parts.push(`loss ${Number.isFinite(loss) ? loss.toFixed(4) : String(loss)}`);
    parts.push(`tokens/s ${this.tokPerS === null ? '?' : formatRate(this.tokPerS)}`);
    parts.push(`ETA ${total && this.secPerStep !== null ? formatDuration((total - step) * this.secPerStep) : '?'}`);
    if (restarts) parts.push(`restarts ${restarts}`);
    return parts.join('  ');
  }

  private draw(line: string): void {
    const cols = this.o.columns ?? 120;
    this.shown = line.length > cols - 1 ? line.slice(0, cols - 1) : line;
    this.o.write('\r\x1b[K' + this.shown);
  }
}
