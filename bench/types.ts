/** Shared shape of a benchmark: options it accepts, and a run that logs figures and returns them. */
export type BenchResult = Record<string, unknown> & { bench: string };

export interface Benchmark {
  options: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>;
  run(opts: Record<string, string | boolean | undefined>, log: (line: string) => void): Promise<BenchResult>;
}
