/**
 * An actor's mailbox: messages are handled one at a time, in arrival order, never concurrently.
 * A handler that throws or rejects does not corrupt the mailbox: the error goes to `onError`
 * (normally: mark the actor failed so its supervisor sees it) and later messages are dropped.
 */
export type Handler<M> = (msg: M) => void | Promise<void>;

export class Mailbox<M> {
  private queue: M[] = [];
  private running = false;
  private failed = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handler: Handler<M>,
    private readonly onError: (e: unknown, msg: M) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  get isFailed(): boolean {
    return this.failed;
  }

  post(msg: M): boolean {
    if (this.closed || this.failed) return false;
    this.queue.push(msg);
    if (!this.running) void this.drain();
    return true;
  }

  /** Resolves once every message posted so far has been handled. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  close(): void {
    this.closed = true;
    this.queue = [];
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length && !this.failed) {
      const msg = this.queue.shift()!;
      try {
        await this.handler(msg);
      } catch (e) {
        this.failed = true;
        this.queue = [];
        try {
          this.onError(e, msg);
        } catch {
          /* an error reporter that throws must not take the mailbox down with it */
        }
      }
    }
    this.running = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((r) => r());
  }
}
