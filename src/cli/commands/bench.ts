/**
 * `ulysses-actors bench <name> [--json] [options]`: runs one benchmark from bench/ and prints its
 * figures; with --json the last line is a single JSON object.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../UsageError.js';
import type { BenchResult, Benchmark } from '../../../bench/types.js';

const benches: Record<string, () => Promise<Benchmark>> = {
  gemm: async () => (await import('../../../bench/gemm.js')).gemmBench,
  attention: async () => (await import('../../../bench/attention.js')).attentionBench,
  step: async () => (await import('../../../bench/step.js')).stepBench,
  alltoall: async () => (await import('../../../bench/alltoall.js')).alltoallBench,
  kernels: async () => (await import('../../../bench/kernels.js')).kernelsBench,
  control: async () => (await import('../../../bench/control.js')).controlBench,
  data: async () => (await import('../../../bench/data.js')).dataBench,
  memory: async () => (await import('../../../bench/memory.js')).memoryBench,
};

export async function benchCommand(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || !(name in benches)) {
    throw new UsageError(`expected a benchmark name: ${Object.keys(benches).join(', ')}`);
  }
  const bench = await benches[name]!();
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false }, ...bench.options }, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { json, ...opts } = parsed.values as Record<string, string | boolean | undefined>;
  const log = (line: string) => process.stdout.write(line + '\n');
  const result: BenchResult = await bench.run(opts, log);
  if (json) log(JSON.stringify(result));
  return 0;
}
