// Rank processes of the in-process SP equivalence tests: spawns `world` copies of a rank fixture
// (argv: {rank, world, dir, timeoutMs}), collects each one's `result <json>` line, exit code and
// the gradient file it wrote to <dir>/rank<r>.f32; kills them (by pid) and removes dir at teardown.
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function runRanks(t: Test, fixture: string, world: number): Promise<{ results: Record<string, unknown>[]; grads: Float32Array[]; logs: string[]; codes: (number | null)[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'ua-sp-ranks-'));
  const children: ChildProcess[] = [];
  const kill = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  };
  t.teardown(() => {
    kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
  delete env.NODE_OPTIONS;
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const results: Record<string, unknown>[] = [];
  const logs: string[] = [];
  const codes: (number | null)[] = [];
  return new Promise((resolve, reject) => {
    let left = world;
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`ranks did not finish in 90 s:\n${logs.join('\n')}`));
    }, 90_000);
    for (let rank = 0; rank < world; rank++) {
      const child = spawn(process.execPath, [...(loader.length ? loader : process.execArgv), fixture, JSON.stringify({ rank, world, dir, timeoutMs: 30_000 })], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) {
          const line = buf.slice(0, nl);
          logs.push(`rank ${rank}: ${line.slice(0, 400)}`);
          const m = /\] result (.*)$/.exec(line);
          if (m) results[rank] = JSON.parse(m[1]!);
        }
      });
      child.stderr!.on('data', (d: Buffer) => logs.push(`rank ${rank} stderr: ${d.toString().slice(0, 800)}`));
      child.on('close', (code) => {
        codes[rank] = code;
        if (--left > 0) return;
        clearTimeout(timer);
        try {
          const grads = Array.from({ length: world }, (_, r) => {
            const b = readFileSync(join(dir, `rank${r}.f32`));
            return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
          });
          resolve({ results, grads, logs, codes });
        } catch (e) {
          reject(new Error(`${(e as Error).message}\n${logs.join('\n')}`));
        }
      });
    }
  });
}

