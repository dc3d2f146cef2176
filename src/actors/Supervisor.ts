/**
 * An OTP-style supervisor. Children are described by specs and started in order; when one exits
 * abnormally the strategy decides which children restart:
 *   one_for_one  - only that child;
 *   one_for_all  - every child (the rule for training ranks: a failed rank fails the group);
 *   rest_for_one - that child and those started after it.
 * Restart intensity: more than `maxRestarts` restarts within `restartWindowMs` (sliding window,
 * injected clock) and the supervisor gives up, stops everything, and reports the FIRST failure
 * of the window. Must never restart in a tight loop or leave a child running after close().
 */
import type { Clock } from '../util/Clock.js';
import type { Logger } from '../util/Logger.js';

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
export type RestartPolicy = 'permanent' | 'transient' | 'temporary';

export interface ExitInfo {
  /** normal: finished its work; anything else is a failure */
  normal: boolean;
  reason: string;
  code?: number | null;
  signal?: string | null;
  detail?: Record<string, unknown>;
}

export interface ChildHandle {
  readonly exited: Promise<ExitInfo>;
  /** Stops the child (its shutdown ladder); resolves when it is gone or reported unkillable. */
  stop(reason: string): Promise<void>;
}

export interface ChildSpec {
  id: string;
  start(attempt: number): Promise<ChildHandle>;
  restart?: RestartPolicy;
}

export interface SupervisorOptions {
  strategy: Strategy;
  maxRestarts: number;
  restartWindowMs: number;
  clock: Clock;
  logger: Logger;
  /** called after children restarted because of `cause` */
  onRestart?(cause: { child: string; exit: ExitInfo }, restarted: string[], attempt: number): void;
  /** called once when the supervisor gives up */
  onGiveUp?(report: GiveUpReport): void;
}

export interface GiveUpReport {
  firstFailure: { child: string; exit: ExitInfo; at: number };
  restartsInWindow: number;
  maxRestarts: number;
  restartWindowMs: number;
}

interface Running {
  spec: ChildSpec;
  handle: ChildHandle | null;
  /** increments each (re)start; exits of older generations are ignored */
  gen: number;
}

export class Supervisor {
  private children: Running[] = [];
  private restarts: { at: number; child: string; exit: ExitInfo }[] = [];
  private attempt = 0;
  private state: 'idle' | 'running' | 'restarting' | 'stopped' | 'gave_up' = 'idle';
  private busy: Promise<void> = Promise.resolve();
  private doneResolve!: (r: { ok: boolean; report?: GiveUpReport }) => void;
  /** resolves when every child finished normally, or the supervisor gave up or was closed */
  readonly done: Promise<{ ok: boolean; report?: GiveUpReport }>;

  constructor(
    private readonly specs: ChildSpec[],
    private readonly o: SupervisorOptions,
  ) {
    this.done = new Promise((r) => (this.doneResolve = r));
  }

  get status(): string {
    return this.state;
  }

  get restartCount(): number {
    return this.attempt;
  }

  async start(): Promise<void> {
    this.state = 'running';
    this.children = this.specs.map((spec) => ({ spec, handle: null, gen: 0 }));
    for (const c of this.children) await this.startChild(c);
  }

  private async startChild(c: Running): Promise<void> {
    const gen = ++c.gen;
    try {
      c.handle = await c.spec.start(this.attempt);
    } catch (e) {
      c.handle = null;
      this.onExit(c, gen, { normal: false, reason: `failed to start: ${(e as Error).message}` });
      return;
    }
    c.handle.exited.then(
      (exit) => this.onExit(c, gen, exit),
      (e) => this.onExit(c, gen, { normal: false, reason: `exit watcher failed: ${(e as Error).message}` }),
    );
  }

  private onExit(c: Running, gen: number, exit: ExitInfo): void {
    if (gen !== c.gen || this.state === 'stopped' || this.state === 'gave_up') return;
    const policy = c.spec.restart ?? 'permanent';
    c.handle = null;
    if (exit.normal && policy !== 'permanent') {
      if (this.children.every((x) => x.handle === null)) this.finish({ ok: true });
      return;
    }
    if (policy === 'temporary' || (policy === 'transient' && exit.normal)) return;
    this.busy = this.busy.then(() => this.handleFailure(c, gen, exit));
  }

  private async handleFailure(c: Running, gen: number, exit: ExitInfo): Promise<void> {
    if (this.state === 'stopped' || this.state === 'gave_up') return;
    // Failures queue behind the restart in progress. One of a generation that restart already
    // replaced (one_for_all: the peers of a crashed child often fail at the same moment) is not
    // a new failure: handling it would restart the fresh group and spend the restart intensity.
    if (gen !== c.gen) return;
    const now = this.o.clock.now();
    this.restarts = this.restarts.filter((r) => now - r.at <= this.o.restartWindowMs);
    this.restarts.push({ at: now, child: c.spec.id, exit });
    // the owner reports failures to the user (the coordinator's events): this is the detail log
    this.o.logger.info('child failed', { child: c.spec.id, reason: exit.reason, code: exit.code, signal: exit.signal });
    if (this.restarts.length > this.o.maxRestarts) {
      const first = this.restarts[0]!;
      const report: GiveUpReport = {
        firstFailure: { child: first.child, exit: first.exit, at: first.at },
        restartsInWindow: this.restarts.length - 1,
        maxRestarts: this.o.maxRestarts,
        restartWindowMs: this.o.restartWindowMs,
      };
      this.state = 'gave_up';
      await this.stopAll('supervisor gave up');
      this.o.logger.info('restart intensity exceeded: giving up', { first: first.child, reason: first.exit.reason });
      this.o.onGiveUp?.(report);
      this.finish({ ok: false, report });
      return;
    }
    this.state = 'restarting';
    this.attempt++;
    const idx = this.children.indexOf(c);
    const targets =
      this.o.strategy === 'one_for_one' ? [c] : this.o.strategy === 'one_for_all' ? this.children : this.children.slice(idx);
    // stop in reverse start order, restart in start order
    for (const t of [...targets].reverse()) {
      if (t.handle) {
        const h = t.handle;
        t.gen++; // the exit of the stopped generation is not a new failure
        t.handle = null;
        await h.stop(`restart after ${c.spec.id} failed`);
      }
    }
    for (const t of targets) await this.startChild(t);
    if (this.state === 'restarting') this.state = 'running';
    this.o.onRestart?.({ child: c.spec.id, exit }, targets.map((t) => t.spec.id), this.attempt);
  }

  private async stopAll(reason: string): Promise<void> {
    for (const c of [...this.children].reverse()) {
      const h = c.handle;
      c.gen++;
      c.handle = null;
      if (h) await h.stop(reason);
    }
  }

  private finish(r: { ok: boolean; report?: GiveUpReport }): void {
    this.doneResolve(r);
  }

  /** Stops every child (reverse order) and settles `done`. Safe to call twice. */
  async close(reason = 'shutdown'): Promise<void> {
    if (this.state === 'stopped') return;
    const gaveUp = this.state === 'gave_up';
    this.state = 'stopped';
    await this.busy.catch(() => undefined);
    await this.stopAll(reason);
    if (!gaveUp) this.finish({ ok: true });
  }
}
