/**
 * Runs the real `bin/ulysses-actors` in a child process, the way a user does. tap wraps
 * child_process and injects its loaders through NODE_OPTIONS, and they load the extensionless
 * bin script as CommonJS; so the child is started through `sh`, which drops NODE_OPTIONS first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const binPath = fileURLToPath(new URL('../../bin/ulysses-actors', import.meta.url));

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}) {
  return spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, ...args], {
    encoding: 'utf8',
    env: cleanEnv(opts.env),
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 120_000,
    input: opts.input,
  });
}

export function spawnCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): ChildProcess {
  return spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}
