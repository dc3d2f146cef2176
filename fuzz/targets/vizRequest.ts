/**
 * Fuzz target `viz-request`: the visualizer's request parsing (viz/requestRoute.ts) on hostile
 * requests to a loopback-bound server. Input: lines `METHOD`, `TARGET`, `HOST`, `LAST-EVENT-ID`
 * (missing lines are absent headers). Only an HttpError with a 4xx status is a documented
 * refusal. A route it returns must be one the server serves: an asset name (never a path: no
 * separator, no leading dot, nothing left to decode) or an API endpoint whose numbers are safe non-negative integers and
 * whose metric fields are plain names.
 */
import { HttpError, routeRequest } from '../../src/viz/requestRoute.js';
import { check, expectOnly } from './harness.js';

const SERVER = { host: '127.0.0.1', port: 8765 };

const refused = (e: unknown) => e instanceof HttpError && e.status >= 400 && e.status < 500;
const count = (n: number) => Number.isSafeInteger(n) && n >= 0;

export function fuzz(data: Buffer): void {
  const [method, url, host, lastEventId] = data.toString('latin1').split('\n');
  const route = expectOnly(() => routeRequest({ method, url, host, lastEventId }, SERVER), refused);
  if (!route) return;
  check(method === 'GET' || method === 'HEAD', `routed a ${method} request`);
  switch (route.kind) {
    case 'asset':
      // a name, looked up in the asset table: no separator, no leading dot, nothing to decode
      check(/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(route.name), `asset route names ${JSON.stringify(route.name)}`);
      break;
    case 'events':
      check(count(route.since), `events since ${route.since}`);
      break;
    case 'metrics':
      check(count(route.since), `metrics since ${route.since}`);
      // names as metrics.jsonl spells them (`rewards/accuracies`): only looked up as column keys, never as paths
      check(route.fields === null || route.fields.every((f) => /^[\w/]{1,64}$/.test(f)), `metric fields ${JSON.stringify(route.fields)}`);
      break;
    case 'stream':
      check(count(route.from), `stream from ${route.from}`);
      break;
    case 'chart':
    case 'info':
    case 'results':
      break;
  }
}
