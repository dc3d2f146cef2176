/**
 * The visualizer's request parsing as a pure function: method, request target, Host and
 * Last-Event-ID in, the route to serve (an asset name of the fixed table, or one API endpoint
 * with its checked parameters) or an HttpError (4xx) out. startVizServer.ts serves what this
 * returns; the fuzz target `viz-request` feeds it hostile requests.
 * It must never return a file path: an asset route names an entry of assets.ts's table, and
 * nothing a URL says can reach the file system.
 */

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** headers the error response must carry (Allow for 405) */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export type Route =
  | { kind: 'asset'; name: string }
  | { kind: 'chart' }
  | { kind: 'info' }
  | { kind: 'results' }
  | { kind: 'events'; since: number }
  /** fields: the metric columns asked for, or null for whole rows */
  | { kind: 'metrics'; since: number; fields: string[] | null }
  /** from: the first event the stream sends (Last-Event-ID + 1, or ?since=) */
  | { kind: 'stream'; from: number };

export interface RequestHead {
  method?: string;
  url?: string;
  host?: string;
  lastEventId?: string | string[];
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host);
}

/**
 * A server bound to loopback answers only to loopback names: a foreign Host header means DNS
 * rebinding (another site's script pointed at 127.0.0.1), and the run's data is not theirs.
 */
export function hostAllowed(boundHost: string, port: number, header: string | undefined): boolean {
  if (!LOOPBACK.has(boundHost)) return true;
  if (!header) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(header);
  if (!m) return false;
  const name = m[1]!.replace(/^\[|\]$/g, '');
  return LOOPBACK.has(name) && (m[2] === undefined || Number(m[2]) === port);
}

/** The path of a request, decoded once, or an HttpError for anything that tries to leave it. */
export function requestPath(rawUrl: string): { path: string; query: URLSearchParams } {
  if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) throw new HttpError(400, 'bad request target');
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (/%00|\0|\\|%5c/i.test(rawPath)) throw new HttpError(400, 'bad character in path');
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new HttpError(400, 'bad escape in path');
  }
  if (path.includes('\0') || path.includes('\\') || path.split('/').some((s) => s === '..' || s === '.')) {
    throw new HttpError(400, 'path traversal refused');
  }
  return { path, query: new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1)) };
}

export function intParam(query: URLSearchParams, name: string): number {
  const v = query.get(name);
  if (v === null || v === '') return 0;
  if (!/^\d{1,15}$/.test(v)) throw new HttpError(400, `${name} must be a non-negative integer`);
  return Number(v);
}

/** `fields=step,loss`: at most 32 metric names as metrics.jsonl spells them (word characters and `/`, as in `rewards/accuracies`). */
export function fieldNames(fields: string): string[] {
  const names = fields.split(',');
  if (names.length > 32 || names.some((n) => !/^[A-Za-z0-9_/]{1,64}$/.test(n))) throw new HttpError(400, 'fields must be up to 32 comma-separated names');
  return names;
}

/** Routes one request of a server bound to `server.host:server.port`, or throws an HttpError. */
export function routeRequest(req: RequestHead, server: { host: string; port: number }): Route {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed', { allow: 'GET, HEAD' });
  if (!hostAllowed(server.host, server.port, req.host)) throw new HttpError(403, 'unexpected Host header');
  const { path, query } = requestPath(req.url ?? '/');
  if (path === '/' || path === '/index.html') return { kind: 'asset', name: 'index.html' };
  if (path.startsWith('/assets/')) {
    const name = path.slice('/assets/'.length);
    if (!ASSET_NAME.test(name)) throw new HttpError(404, 'no such asset');
    return { kind: 'asset', name };
  }
  switch (path) {
    case '/api/chart':
      return { kind: 'chart' };
    case '/api/info':
      return { kind: 'info' };
    case '/api/results':
      return { kind: 'results' };
    case '/api/events':
      return { kind: 'events', since: intParam(query, 'since') };
    case '/api/metrics': {
      const fields = query.get('fields');
      return { kind: 'metrics', since: intParam(query, 'since'), fields: fields === null ? null : fieldNames(fields) };
    }
    case '/api/stream': {
      const header = req.lastEventId;
      if (typeof header === 'string' && /^\d{1,15}$/.test(header)) return { kind: 'stream', from: Number(header) + 1 };
      return { kind: 'stream', from: intParam(query, 'since') };
    }
    default:
      throw new HttpError(404, 'not found');
  }
}
