/**
 * The fixed list of files the visualizer serves: the page and its scripts (src/viz/client, found
 * from the package root so the compiled server in dist/ serves the same files) and the browser
 * builds of elkjs and uPlot from node_modules. A request names an entry of this table, never a
 * path: nothing outside the table can be served, whatever the URL says.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../util/packageRoot.js';

export interface Asset {
  file: string;
  type: string;
}

const types: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** Our own client files (src/viz/client). */
export const clientFiles = [
  'index.html',
  'viz.css',
  'main.js',
  'model.js',
  'diagram.js',
  'eventlog.js',
  'plots.js',
  'cluster.js',
  'timeline.js',
] as const;

let table: Map<string, Asset> | undefined;

/** Asset name (the part after /assets/) -> file. Built once. */
export function assetTable(): Map<string, Asset> {
  if (table) return table;
  const t = new Map<string, Asset>();
  const clientDir = join(packageRoot(), 'src', 'viz', 'client');
  for (const f of clientFiles) t.set(f, { file: join(clientDir, f), type: types[f.split('.').pop()!]! });
  const require = createRequire(import.meta.url);
  // packages without an exports map: their files resolve by path
  t.set('elk.bundled.js', { file: require.resolve('elkjs/lib/elk.bundled.js'), type: types.js! });
  t.set('uPlot.iife.min.js', { file: require.resolve('uplot/dist/uPlot.iife.min.js'), type: types.js! });
  t.set('uPlot.min.css', { file: require.resolve('uplot/dist/uPlot.min.css'), type: types.css! });
  table = t;
  return t;
}
