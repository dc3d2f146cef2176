/**
 * Loads the compiled native addon (native/build/Release/ulysses_native.node) once and exposes its
 * raw binding, typed by nativeBinding.ts. Callers should use the typed wrappers in src/engine,
 * never this object directly: the raw functions validate their arguments but report problems as
 * bare codes.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/packageRoot.js';
import { EngineError } from './errors.js';
import type { NativeBinding } from './nativeBinding.js';


let cached: NativeBinding | undefined;

export function native(): NativeBinding {
  if (cached) return cached;
  const path = join(packageRoot(), 'native', 'build', 'Release', 'ulysses_native.node');
  if (!existsSync(path)) {
    throw new EngineError('ERR_ADDON', `native addon not built (${path}); run \`npm run setup\``);
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeBinding;
  return cached;
}
