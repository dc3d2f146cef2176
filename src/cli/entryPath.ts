/** Where the compiled CLI entry lives, for starting agents and ranks as child processes. */
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';

export function cliEntry(): string {
  return join(packageRoot(), 'dist', 'src', 'cli', 'entry.js');
}
