/**
 * The GPU proof that scripts/device-check.sh runs on a lent GPU machine (Node.js and the built
 * addon carried there; no npm packages needed: the engine imports none): CUDA availability and the
 * device, where cuBLAS and NCCL were found, every CUDA kernel against the CPU kernel
 * (bench/cudaKernels.ts), an NCCL unique id, the cuBLAS bf16 GEMM rate, and `bench step --device
 * cuda`. Writes one JSON report (argv[2]) and prints a summary. Exit 0 only when every check ran
 * and passed. Must never stop at the first failure: each part records its own error.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaAvailability, cudaDeviceInfo, cudaLibraries } from '../src/engine/device/index.js';
import { native } from '../src/engine/native.js';
import { packageRoot } from '../src/util/packageRoot.js';
import { KERNEL_CASES, checkKernel } from './cudaKernels.js';
import { runStepCuda } from './stepCuda.js';

interface Part {
  name: string;
  ok: boolean;
  seconds: number;
  result?: unknown;
  error?: string;
}

async function part(parts: Part[], name: string, body: () => Promise<{ ok: boolean; result: unknown }>): Promise<void> {
  const t0 = performance.now();
  try {
    const { ok, result } = await body();
    parts.push({ name, ok, seconds: (performance.now() - t0) / 1e3, result });
  } catch (e) {
    const err = e as Error & { code?: string };
    parts.push({ name, ok: false, seconds: (performance.now() - t0) / 1e3, error: `${err.code ?? err.name}: ${err.message}` });
  }
  const p = parts[parts.length - 1]!;
  process.stdout.write(`${p.ok ? 'PASS' : 'FAIL'} ${name} (${p.seconds.toFixed(2)} s)${p.error ? `: ${p.error}` : ''}\n`);
}

async function main(): Promise<number> {
  const out = process.argv[2] ?? 'device-check.json';
  const parts: Part[] = [];
  const a = cudaAvailability();
  await part(parts, 'availability', async () => ({ ok: a.built && a.devices > 0, result: a }));
  await part(parts, 'device 0', async () => ({ ok: true, result: cudaDeviceInfo(0) }));
  await part(parts, 'libraries', async () => {
    const libs = cudaLibraries();
    return { ok: libs.length > 0 && libs.every((l) => l.path !== ''), result: libs.map(({ tried: _t, ...l }) => l) };
  });
  for (const c of KERNEL_CASES) await part(parts, `kernel ${c.op}`, async () => {
    const r = await checkKernel(c, 0);
    return { ok: r.ok, result: r };
  });
  await part(parts, 'nccl unique id', async () => ({ ok: native().ncclUniqueId().length === 128, result: 128 }));
  await part(parts, 'cuBLAS bf16 GEMM 8192^3', async () => {
    const tflops = await native().cudaGemmTflops(0, 8192, 8192, 8192, 10);
    return { ok: tflops > 0, result: { tflops } };
  });
  const log: string[] = [];
  await part(parts, 'bench step --device cuda', async () => {
    const config = join(packageRoot(), 'examples', 'models', 'small', 'config.json');
    const r = await runStepCuda({ config, seq: 4096, steps: 2, checkpointing: false }, (l) => log.push(l));
    return { ok: true, result: r };
  });
  const report = { when: new Date().toISOString(), node: process.version, parts, benchLog: log };
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  const failed = parts.filter((p) => !p.ok).length;
  process.stdout.write(`${parts.length - failed} passed, ${failed} failed; report: ${out}\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`device check: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
