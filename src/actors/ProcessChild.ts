/**
 * A child OS process under supervision, with the shutdown ladder:
 *   1. ask it to stop (an abort message over the control plane, when the caller provides one);
 *   2. SIGTERM to its whole process group;  3. wait the grace period;
 *   4. SIGKILL to the process group;        5. wait a bounded time;
 *   6. if it is still there, report it as unkillable and stop waiting (never wait forever).
 * The child runs in its own process group (detached) so its helpers die with it; it is still
 * killed when the parent exits normally. With `lifeline` its stdin is a pipe that this process
 * holds open: the child sees it close when this process dies in any way (a SIGKILL included);
 * `send` writes to it (a standby rank takes its assignment that way).
 * Signals go only to pids this object started.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { exitedWithin, killGroupOnExit, terminateGroup } from './processGroup.js';
import type { ChildHandle, ExitInfo } from './Supervisor.js';

export interface ProcessChildOptions {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** keep this many bytes of stderr for failure reports */
  stderrTailBytes?: number;
  /** time allowed after the abort request before SIGTERM (ms) */
  abortWaitMs?: number;
  /** time allowed after SIGTERM before SIGKILL (ms) */
  graceMs?: number;
  /** time allowed after SIGKILL before reporting the process as unkillable (ms) */
  killWaitMs?: number;
  /** asks the process to stop gracefully (e.g. a control-plane abort); optional */
  requestAbort?(reason: string): void;
  /** called with the process's stdout/stderr chunks (optional) */
  onOutput?(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  onUnkillable?(pid: number): void;
  /** give the child a stdin pipe that stays open while this process lives (default: no stdin) */
  lifeline?: boolean;
}

export class ProcessChild implements ChildHandle {
  readonly proc: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  private tail = Buffer.alloc(0);
  private exitInfo: ExitInfo | null = null;
  private stopping: Promise<void> | null = null;
  private stopReason: string | null = null;

  constructor(private readonly o: ProcessChildOptions) {
    const opts: SpawnOptions = { env: o.env, cwd: o.cwd, detached: true, stdio: [o.lifeline ? 'pipe' : 'ignore', 'pipe', 'pipe'] };
    this.proc = spawn(o.command, o.args, opts);
    // a child that exits first must not break the lifeline (nor a write to it)
    this.proc.stdin?.on('error', () => {});
    const keep = o.stderrTailBytes ?? 8192;
    this.proc.stderr!.on('data', (b: Buffer) => {
      this.tail = Buffer.concat([this.tail, b]);
      if (this.tail.length > keep) this.tail = this.tail.subarray(this.tail.length - keep);
      o.onOutput?.('stderr', b);
    });
    this.proc.stdout!.on('data', (b: Buffer) => o.onOutput?.('stdout', b));
    this.exited = new Promise((resolve) => {
      this.proc.once('error', (e) => {
        this.exitInfo ??= { normal: false, reason: `could not start ${o.command}: ${e.message}`, code: null, signal: null };
        resolve(this.exitInfo);
      });
      this.proc.once('exit', (code, signal) => {
        const normal = code === 0 && this.stopReason === null;
        this.exitInfo ??= {
          normal,
          reason: this.stopReason ? `stopped: ${this.stopReason}` : signal ? `killed by ${signal}` : `exited with code ${code}`,
          code,
          signal,
          detail: { stderrTail: this.stderrTail() },
        };
        resolve(this.exitInfo);
      });
    });
    // if the supervising process exits, take the group down with it
    killGroupOnExit(this.proc.pid, this.exited, () => this.exitInfo !== null);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.exitInfo === null && this.proc.pid !== undefined;
  }

  /**
   * Writes `text` to the child's stdin (a `lifeline` child only). False when there is no pipe or
   * the child is gone: the caller starts another process instead.
   */
  send(text: string): boolean {
    const stdin = this.proc.stdin;
    if (!this.alive || !stdin || stdin.destroyed || !stdin.writable) return false;
    stdin.write(text);
    return true;
  }

  stderrTail(): string {
    return this.tail.toString('utf8');
  }

  private waitExit(ms: number): Promise<boolean> {
    return this.exitInfo ? Promise.resolve(true) : exitedWithin(this.exited, ms);
  }

  /**
   * The shutdown ladder. `now`: nobody asked the child to stop (its coordinator is gone), so the
   * ladder starts at SIGTERM. Safe to call twice (the second call waits for the first).
   */
  stop(reason: string, now = false): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.alive) return;
      this.stopReason = reason;
      if (this.o.requestAbort && !now) {
        try {
          this.o.requestAbort(reason);
        } catch {
          /* the abort path is best effort; signals follow */
        }
        if (await this.waitExit(this.o.abortWaitMs ?? 2000)) return;
      }
      if (await terminateGroup(this.proc.pid, this.exited, () => this.exitInfo !== null, this.o.graceMs ?? 5000, this.o.killWaitMs ?? 5000)) return;
      this.o.onUnkillable?.(this.proc.pid!);
    })();
    return this.stopping;
  }
}
