/**
 * Where a worker entry of this folder lives: beside this module, with this module's extension
 * (`.js` in the build; `.ts` when the sources run under a TypeScript loader, which worker threads
 * inherit), so a worker always runs the same code as the thread that starts it.
 */
export function workerUrl(name: 'tokenizeWorker' | 'prepareWorker'): URL {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${ext}`, import.meta.url);
}
