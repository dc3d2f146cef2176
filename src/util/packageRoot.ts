/**
 * Where this package lives (the folder holding package.json and native/binding.gyp), found from
 * this file's location, and the compiled CLI entry in it, which agents and ranks are started
 * with as child processes. Reads only the file system's layout.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native', 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw Object.assign(new Error('cannot find the ulysses-actors package root'), { code: 'ERR_ADDON' });
    dir = up;
  }
}

/** The compiled CLI entry (`node dist/src/cli/entry.js ...`). */
export function cliEntry(): string {
  return join(packageRoot(), 'dist', 'src', 'cli', 'entry.js');
}
