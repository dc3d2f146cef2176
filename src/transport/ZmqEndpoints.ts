/**
 * ZeroMQ endpoints of the control plane: a ROUTER for the coordinator and a DEALER for agents and
 * ranks. Both use linger 0, a send queue (zeromq.js allows one pending send per socket), CURVE
 * encryption, and validate every received frame (dropped when bad, logged at a bounded rate:
 * DropLog.ts). The ROUTER also runs a ZAP handler that admits only the job's client key.
 * ZMTP heartbeats are off unless asked for, and never time out sooner than asked: a connection
 * dropped by a heartbeat timeout loses the frames in flight, while a coordinator that was only
 * paused (or a network cut that heals) gets every queued frame once TCP delivers it; deciding
 * that a peer is gone is the application heartbeats' job.
 * Must never: block the event loop, throw from send(), or crash on a hostile frame.
 */
import { Dealer, Reply, Router } from 'zeromq';
import type { Logger } from '../util/Logger.js';
import { DropLog } from './DropLog.js';
import { DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame, type Frame, type Role } from './FrameCodec.js';
import type { JobKeys } from './keys.js';
import { z85Encode } from './keys.js';
import type { BodyOf, MessageType } from './messages.js';
import type { FrameHandler, PeerId, Transport, TransportStats } from './Transport.js';

export interface EndpointOptions {
  keys: JobKeys;
  logger: Logger;
  maxFrameBytes?: number;
  /** ZMTP heartbeat interval (ms); 0 (the default) disables */
  zmtpHeartbeatMs?: number;
  /** ZMTP heartbeat timeout (ms; default 3 intervals) */
  zmtpTimeoutMs?: number;
}

/** The socket options of ZMTP heartbeats: none at all when disabled. */
function zmtpHeartbeat(o: EndpointOptions): { heartbeatInterval?: number; heartbeatTimeout?: number } {
  const every = o.zmtpHeartbeatMs ?? 0;
  return every > 0 ? { heartbeatInterval: every, heartbeatTimeout: o.zmtpTimeoutMs ?? every * 3 } : {};
}

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

/**
 * Binds the process's ZAP handler endpoint. ZeroMQ releases an inproc endpoint asynchronously
 * after its socket closes, so a coordinator started right after another one (the fault-free
 * reference run, then the faulty run) may find it still taken for a moment: retry briefly.
 */
async function bindZap(zap: Reply, waitMs = 3000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await zap.bind(ZAP_ENDPOINT);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EADDRINUSE' || Date.now() - t0 > waitMs) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** One-at-a-time sender over a zeromq.js socket. */
class SendQueue {
  private q: (Buffer | string)[][] = [];
  private busy = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly sock: { send(m: (Buffer | string)[]): Promise<void> },
    private readonly onError: (e: unknown) => void,
  ) {}

  push(parts: (Buffer | string)[]): void {
    if (this.closed) return;
    this.q.push(parts);
    if (!this.busy) void this.drain();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    while (this.q.length && !this.closed) {
      const m = this.q.shift()!;
      try {
        await this.sock.send(m);
      } catch (e) {
        this.onError(e);
      }
    }
    this.busy = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((r) => r());
  }

  /** Resolves when everything queued so far has been handed to ZeroMQ. */
  idle(): Promise<void> {
    if (!this.busy && this.q.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  close(): void {
    this.closed = true;
    this.q = [];
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((r) => r());
  }
}

abstract class EndpointBase {
  readonly stats: TransportStats = { sent: 0, received: 0, dropped: 0, sendErrors: 0 };
  protected handlers: FrameHandler[] = [];
  protected seq = 0;
  protected closed = false;
  protected readonly maxFrameBytes: number;
  /** bad frames are logged at a bounded rate: one line per peer per interval */
  protected readonly drops: DropLog;

  constructor(protected readonly opts: EndpointOptions) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.drops = new DropLog({ logger: opts.logger, what: 'dropped a control frame' });
  }

  onFrame(handler: FrameHandler): void {
    this.handlers.push(handler);
  }

  /** Decodes, validates (plus an optional check of the sender) and hands the frame to the handlers. */
  protected deliver(raw: Buffer, from: PeerId, check?: (f: Frame) => string | null): void {
    const r = decodeFrame(raw, this.maxFrameBytes);
    const reason = r.ok ? check?.(r.frame) ?? null : r.reason;
    if (!r.ok || reason) {
      this.stats.dropped++;
      this.drops.drop(from, reason ?? 'invalid');
      return;
    }
    this.stats.received++;
    for (const h of this.handlers) {
      try {
        h(r.frame, from);
      } catch (e) {
        this.opts.logger.error('frame handler failed', { from, type: r.frame.type, error: (e as Error).message });
      }
    }
  }

  protected sendError(e: unknown): void {
    this.stats.sendErrors++;
    if (!this.closed) this.opts.logger.warn('control send failed', { error: (e as Error).message });
  }
}

export interface RouterOptions extends EndpointOptions {
  /** bind address; loopback by default */
  host?: string;
  /** 0 = ephemeral */
  port?: number;
}

/** The coordinator's endpoint. Peers are addressed by their routing id (`rank:3`). */
export class RouterEndpoint extends EndpointBase implements Transport {
  private readonly sock: Router;
  private readonly zap: Reply;
  private readonly queue: SendQueue;
  private endpointUrl = '';
  private readonly refusals: DropLog;

  constructor(opts: RouterOptions) {
    super(opts);
    this.refusals = new DropLog({ logger: opts.logger, what: 'refused a peer without the job key' });
    this.sock = new Router({
      linger: 0,
      mandatory: false,
      handover: true,
      curveServer: true,
      curveSecretKey: opts.keys.server.secretKey,
      curvePublicKey: opts.keys.server.publicKey,
      zapDomain: 'ulysses',
      maxMessageSize: this.maxFrameBytes + 1024,
      ...zmtpHeartbeat(opts),
    });
    this.zap = new Reply({ linger: 0 });
    this.queue = new SendQueue(this.sock, (e) => this.sendError(e));
  }

  /** Binds and starts receiving; returns the tcp:// endpoint peers connect to. */
  async bind(host = (this.opts as RouterOptions).host ?? '127.0.0.1', port = (this.opts as RouterOptions).port ?? 0): Promise<string> {
    await bindZap(this.zap);
    void this.zapLoop();
    await this.sock.bind(`tcp://${host}:${port === 0 ? '*' : port}`);
    this.endpointUrl = this.sock.lastEndpoint ?? '';
    void this.receiveLoop();
    return this.endpointUrl;
  }

  get endpoint(): string {
    return this.endpointUrl;
  }

  send<K extends MessageType>(to: PeerId, type: K, body: BodyOf<K>): void {
    if (this.closed) return;
    const buf = encodeFrame({ type, role: 'coord', sender: -1, incarnation: 0, seq: this.seq++, body });
    this.stats.sent++;
    this.queue.push([to, buf]);
  }

  private async zapLoop(): Promise<void> {
    const allowed = this.opts.keys.client.publicKey;
    try {
      for await (const msg of this.zap) {
        // ZAP request: version, request id, domain, address, identity, mechanism, credentials...
        const [version, requestId, , address, , mechanism, credentials] = msg;
        const key = mechanism?.toString() === 'CURVE' && credentials?.length === 32 ? z85Encode(credentials) : '';
        const ok = key === allowed;
        if (!ok) this.refusals.drop(address?.toString() ?? '?', `mechanism ${mechanism?.toString() ?? '?'}`);
        await this.zap.send([version ?? '1.0', requestId ?? '', ok ? '200' : '400', ok ? 'OK' : 'not a member of this job', ok ? 'job' : '', '']);
      }
    } catch (e) {
      if (!this.closed) this.opts.logger.error('ZAP handler stopped', { error: (e as Error).message });
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const parts of this.sock) {
        if (parts.length !== 2) {
          this.stats.dropped++;
          this.drops.drop(parts[0]?.toString() ?? '?', `a message of ${parts.length} parts`);
          continue;
        }
        const from = parts[0]!.toString();
        // a frame must come from the identity it claims (`role:sender`)
        this.deliver(parts[1]!, from, (f) =>
          `${f.role}:${f.sender}` === from ? null : `sender ${f.role}:${f.sender} does not match its connection ${from}`,
        );
      }
    } catch (e) {
      if (!this.closed) this.opts.logger.error('router receive loop stopped', { error: (e as Error).message });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.close();
    this.sock.close();
    this.zap.close();
    this.drops.close();
    this.refusals.close();
  }
}

export interface DealerOptions extends EndpointOptions {
  role: Role;
  index: number;
  incarnation: number;
}

/** An agent's or rank's endpoint: one connection to the coordinator. */
export class DealerEndpoint extends EndpointBase implements Transport {
  private readonly sock: Dealer;
  private readonly queue: SendQueue;
  readonly id: PeerId;

  constructor(private readonly dopts: DealerOptions) {
    super(dopts);
    this.id = `${dopts.role}:${dopts.index}`;
    this.sock = new Dealer({
      linger: 0,
      routingId: this.id,
      curveServerKey: dopts.keys.server.publicKey,
      curvePublicKey: dopts.keys.client.publicKey,
      curveSecretKey: dopts.keys.client.secretKey,
      maxMessageSize: this.maxFrameBytes + 1024,
      ...zmtpHeartbeat(dopts),
    });
    this.queue = new SendQueue(this.sock, (e) => this.sendError(e));
  }

  connect(endpoint: string): void {
    this.sock.connect(endpoint);
    void this.receiveLoop();
  }

  send<K extends MessageType>(_to: PeerId, type: K, body: BodyOf<K>): void {
    if (this.closed) return;
    const buf = encodeFrame({ type, role: this.dopts.role, sender: this.dopts.index, incarnation: this.dopts.incarnation, seq: this.seq++, body });
    this.stats.sent++;
    this.queue.push([buf]);
  }

  /** Resolves when queued frames have been handed to ZeroMQ, or after timeoutMs. */
  async flush(timeoutMs = 1000): Promise<void> {
    await Promise.race([this.queue.idle(), new Promise((r) => setTimeout(r, timeoutMs))]);
  }

  /** Raw bytes, bypassing the codec: for tests and the fault proxy's corruption faults only. */
  sendRaw(parts: Buffer[]): void {
    this.queue.push(parts);
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const parts of this.sock) {
        if (parts.length !== 1) {
          this.stats.dropped++;
          this.drops.drop('coord', `a message of ${parts.length} parts`);
          continue;
        }
        this.deliver(parts[0]!, 'coord');
      }
    } catch (e) {
      if (!this.closed) this.opts.logger.error('dealer receive loop stopped', { error: (e as Error).message });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.close();
    this.sock.close();
    this.drops.close();
  }
}

export type { Frame };
