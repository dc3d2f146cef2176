/**
 * The visualizer's HTTP server (node:http, no framework): the page and its whitelisted assets, the
 * training statechart as JSON, the run's events and metrics, and a server-sent-events stream of
 * live events that a browser resumes with Last-Event-ID after a disconnect. Started by `up` (with
 * the coordinator's EventLog) and by `viz --replay RUN_DIR`. Binds loopback unless told otherwise.
 *
 * It must never serve a file that is not in the asset table (no path from a URL ever reaches the
 * file system), never keep a listener for a browser that went away, and never let a slow browser
 * make the coordinator buffer without bound (such a stream is cut; the browser resumes).
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { basename, join } from 'node:path';
import type { EventLog } from '../actors/events/EventLog.js';
import { exportChart } from '../statecharts/exportChart.js';
import { trainingPolicyMachine } from '../statecharts/trainingPolicy.js';
import type { Logger } from '../util/Logger.js';
import { assetTable } from './assets.js';
import type { EventStore } from './EventStore.js';
import { RunSources } from './runSources.js';
import { HttpError, isLoopback, routeRequest } from './requestRoute.js';

export interface VizServerOptions {
  /** interface to bind (default loopback) */
  host?: string;
  /** 0 picks a free port */
  port?: number;
  /** live mode: the coordinator's event log */
  live?: EventLog;
  /** the run's output_dir: metrics.jsonl (and events.ndjson when there is no live log) */
  runDir?: string;
  /** with runDir and no live log: keep polling the files as a running job appends to them */
  follow?: boolean;
  logger: Logger;
  /** comment lines that keep idle streams (and proxies) open */
  heartbeatMs?: number;
  pollMs?: number;
  /** events kept for the page and for resuming streams */
  capacity?: number;
}

export interface VizServer {
  url: string;
  host: string;
  port: number;
  /** open event streams (for tests and diagnostics) */
  readonly streams: number;
  /** Cuts every open event stream (browsers reconnect and resume with Last-Event-ID). */
  dropStreams(): void;
  close(): Promise<void>;
}

/** A slow browser may lag this far behind before its stream is cut (it reconnects and resumes). */
const MAX_STREAM_BACKLOG = 16 << 20;
const EVENT_CHUNK = 2000;

const securityHeaders = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

const pageCsp =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Metrics as columns (`{"first","next","columns":{"step":[...],...}}`): the plots need a few
 * numbers per step, a fraction of the full rows. Missing or non-numeric values become null.
 */
function metricColumns(store: EventStore, since: number, names: readonly string[]): string {
  const { first, items } = store.slice(since);
  const cols: Record<string, (number | null)[]> = {};
  for (const n of names) cols[n] = new Array<number | null>(items.length);
  items.forEach((line, i) => {
    const row = JSON.parse(line) as Record<string, unknown>;
    for (const n of names) {
      const v = row[n];
      cols[n]![i] = typeof v === 'number' && Number.isFinite(v) ? v : null;
    }
  });
  return JSON.stringify({ first, next: first + items.length, columns: cols });
}

/** The run's eval_results.json as an object (`{}` when there is none or it does not parse). */
async function evalResults(runDir: string | undefined): Promise<string> {
  if (!runDir) return '{}';
  try {
    const v = JSON.parse(await readFile(join(runDir, 'eval_results.json'), 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? JSON.stringify(v) : '{}';
  } catch {
    return '{}';
  }
}

/** Resolves when the response can take more data or is gone (either way, no listener stays). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export async function startVizServer(o: VizServerOptions): Promise<VizServer> {
  const host = o.host ?? '127.0.0.1';
  const log = o.logger.child('viz');
  const sources = new RunSources({ live: o.live, runDir: o.runDir, follow: o.follow, pollMs: o.pollMs, capacity: o.capacity, logger: log });
  await sources.start();
  const chartJson = JSON.stringify(exportChart(trainingPolicyMachine));
  const assets = assetTable();
  const cache = new Map<string, Buffer>();
  const streams = new Set<{ end(): void }>();
  const sockets = new Set<Socket>();
  let port = 0;

  const sendJson = (res: ServerResponse, body: string, status = 200) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...securityHeaders });
    res.end(body);
  };

  const sendAsset = async (req: IncomingMessage, res: ServerResponse, name: string) => {
    const a = assets.get(name);
    if (!a) throw new HttpError(404, 'no such asset');
    let buf = cache.get(name);
    if (!buf) {
      buf = await readFile(a.file);
      cache.set(name, buf);
    }
    const headers: Record<string, string | number> = { 'content-type': a.type, 'content-length': buf.length, 'cache-control': 'no-cache', ...securityHeaders };
    if (name === 'index.html') headers['content-security-policy'] = pageCsp;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : buf);
  };

  /** `{"first":F,"next":N,"items":[...]}` written in chunks, waiting for the socket to drain. */
  const sendSlice = async (res: ServerResponse, store: EventStore, since: number) => {
    const { first, items } = store.slice(since);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...securityHeaders });
    let ok = res.write(`{"first":${first},"next":${first + items.length},"items":[`);
    for (let i = 0; i < items.length && !res.destroyed; i += EVENT_CHUNK) {
      if (!ok) await drained(res);
      ok = res.write((i ? ',' : '') + items.slice(i, i + EVENT_CHUNK).join(','));
    }
    res.end(']}');
  };

  const openStream = (req: IncomingMessage, res: ServerResponse, from: number) => {
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no', ...securityHeaders });
    const store = sources.events;
    let done = false;
    let unsubscribe: () => void = () => undefined;
    let hb: NodeJS.Timeout | undefined;
    const handle = { end: () => end() };
    // a clean end lets the browser reconnect quietly; a backlog is thrown away with the socket
    function end(discard = false) {
      if (done) return;
      done = true;
      unsubscribe();
      clearInterval(hb);
      streams.delete(handle);
      if (discard) res.destroy();
      else res.end();
    }
    const write = (text: string) => {
      if (done) return;
      res.write(text);
      if (res.writableLength > MAX_STREAM_BACKLOG) {
        log.warn('event stream too far behind; cutting it (the browser resumes)', { backlog: res.writableLength });
        end(true);
      }
    };
    res.write(`retry: 1000\n: ulysses-actors viz ${sources.mode}\n\n`);
    // slice and subscribe in one synchronous step: no event can fall between them
    const { items, first } = store.slice(from);
    let bytes = 0;
    for (const json of items) bytes += json.length + 24;
    if (from < store.first || bytes > MAX_STREAM_BACKLOG / 2) {
      // the browser missed too much to catch up over the stream (or events it wants are gone):
      // it reloads through /api/events, which is sent with flow control
      write(`event: reset\ndata: {"first":${store.first},"next":${store.next}}\n\n`);
      end();
      return;
    } else if (items.length) {
      write(items.map((json, i) => `id: ${first + i}\ndata: ${json}\n\n`).join(''));
    }
    unsubscribe = store.subscribe((seq, json) => write(`id: ${seq}\ndata: ${json}\n\n`));
    hb = setInterval(() => write(': hb\n\n'), o.heartbeatMs ?? 15_000);
    streams.add(handle);
    res.on('close', () => end());
    req.on('close', () => end());
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const route = routeRequest({ method: req.method, url: req.url, host: req.headers.host, lastEventId: req.headers['last-event-id'] }, { host, port });
    switch (route.kind) {
      case 'asset':
        return sendAsset(req, res, route.name);
      case 'chart':
        return sendJson(res, chartJson);
      case 'info':
        return sendJson(
          res,
          JSON.stringify({
            mode: sources.mode,
            run: o.runDir ? basename(o.runDir) : null,
            events: { first: sources.events.first, next: sources.events.next },
            metrics: { first: sources.metrics.first, next: sources.metrics.next },
            skipped: sources.skipped,
          }),
        );
      case 'events':
        return sendSlice(res, sources.events, route.since);
      case 'metrics':
        await sources.refreshMetrics();
        if (route.fields === null) return sendSlice(res, sources.metrics, route.since);
        return sendJson(res, metricColumns(sources.metrics, route.since, route.fields));
      case 'results':
        return sendJson(res, await evalResults(o.runDir));
      case 'stream':
        return openStream(req, res, route.from);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) log.error('request failed', { url: req.url, error: (e as Error).message });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = status === 500 ? 'internal error' : (e as Error).message;
      const extra = e instanceof HttpError ? e.headers : {};
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra, ...securityHeaders });
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    sources.close();
    throw e;
  }
  port = (server.address() as AddressInfo).port;
  // a wildcard bind is reachable on loopback too; print that (it works on this machine)
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
  if (!isLoopback(host)) {
    log.warn('the visualizer is bound beyond loopback: anyone who can reach this port can read the run\'s events and metrics', { host, port });
  }
  const url = `http://${urlHost}:${port}/`;
  log.info('visualizer listening', { url, mode: sources.mode, events: sources.events.next });

  let closing: Promise<void> | null = null;
  return {
    url,
    host,
    port,
    get streams() {
      return streams.size;
    },
    dropStreams() {
      for (const st of [...streams]) st.end();
    },
    close() {
      closing ??= (async () => {
        sources.close();
        for (const s of [...streams]) s.end();
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        await closed;
      })();
      return closing;
    },
  };
}
