/**
 * Runs a check fixture (a TypeScript file that prints one JSON line and exits 0) in a child
 * process whose oneDNN and bf16 kernels may use at most instruction set `isa` (DNNL_MAX_CPU_ISA),
 * so the paths of CPUs without AVX512-BF16 are exercised on any machine. The child is killed when
 * the test ends early.
 */
import { spawn } from 'node:child_process';
import type { Test } from 'tap';

function loaderArgs(): string[] {
  const ts = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  return ts.length ? ts : process.execArgv;
}

export function runUnderIsa<T>(t: Test, fixture: string, isa: string): Promise<T> {
  const env: NodeJS.ProcessEnv = { ...process.env, DNNL_MAX_CPU_ISA: isa };
  delete env.NODE_OPTIONS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...loaderArgs(), fixture], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${fixture} under DNNL_MAX_CPU_ISA=${isa} exited with ${code}:\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as T);
      } catch (e) {
        reject(new Error(`${fixture} under DNNL_MAX_CPU_ISA=${isa} printed no result: ${(e as Error).message}\n${stdout}\n${stderr}`));
      }
    });
  });
}
