/**
 * Small HTTP clients for the visualizer tests: a raw request (the target goes on the wire exactly
 * as written, so traversal attempts are not normalized away by a URL parser) and a server-sent
 * events reader. Loopback only; every socket is closed by its caller or on error.
 */
import { connect } from 'node:net';
import { request, type IncomingMessage } from 'node:http';

export interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

/** Sends `METHOD target HTTP/1.1` verbatim and reads the whole response. */
export function rawRequest(port: number, target: string, opts: { method?: string; host?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.setTimeout(10_000, () => s.destroy(new Error(`timeout on ${target}`)));
    s.on('connect', () => {
      s.write(`${opts.method ?? 'GET'} ${target} HTTP/1.1\r\nHost: ${opts.host ?? `127.0.0.1:${port}`}\r\nConnection: close\r\n\r\n`, 'latin1');
    });
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, headers: text.slice(0, head), body: text.slice(head + 4) });
    });
  });
}

export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
}

/** Reads a server-sent-events stream; `close()` drops the connection like a closed browser tab. */
export class SseReader {
  readonly messages: SseMessage[] = [];
  comments = 0;
  private buf = '';
  private res: IncomingMessage | null = null;
  private req;
  private waiters: (() => void)[] = [];
  status = 0;

  constructor(port: number, path: string, headers: Record<string, string> = {}) {
    this.req = request({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      this.res = res;
      this.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => this.feed(d));
      res.on('error', () => undefined);
    });
    this.req.on('error', () => undefined);
    this.req.end();
  }

  private feed(d: string) {
    this.buf += d;
    let k: number;
    while ((k = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, k);
      this.buf = this.buf.slice(k + 2);
      const m: SseMessage = {};
      let any = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments++;
          continue;
        }
        const [f, ...rest] = line.split(':');
        const v = rest.join(':').replace(/^ /, '');
        if (f === 'id' || f === 'event' || f === 'data') {
          m[f] = v;
          any = true;
        }
      }
      if (any && (m.data !== undefined || m.event)) this.messages.push(m);
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pred` holds (checked on every chunk), or fails after `ms`. */
  async until(pred: () => boolean, ms = 5000, what = 'stream condition'): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  close(): void {
    this.res?.destroy();
    this.req.destroy();
  }
}
