/**
 * One fuzzing run of one target: starts Jazzer.js (libFuzzer in process, coverage from the
 * instrumented compiled sources) on the target's module with its corpus, bounds and
 * dictionary, waits for it, and reads the figures from libFuzzer's own final statistics
 * (executions, edges covered, corpus size, peak RSS) and the findings it wrote (crash-,
 * timeout-, oom- files). A per-input time limit and an RSS limit make hangs and unbounded
 * allocations findings like exceptions. Never runs two fuzzers at once; always removes its
 * scratch folder, also when the fuzzer crashes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FuzzTarget } from './targets.js';

export interface RunOptions {
  root: string;
  seconds: number;
  /** where new corpus inputs are written (the first corpus directory libFuzzer gets) */
  corpusOut: string;
  /** read-only seed corpora, after corpusOut */
  corpusIn: readonly string[];
  crashDir: string;
  /** environment the fuzzer addon needs (compat/fuzzerAddon.ts) */
  env: Record<string, string>;
  rssLimitMb: number;
  /** libFuzzer -merge=1: minimize corpusIn into corpusOut instead of fuzzing */
  merge?: boolean;
  onLine?: (line: string) => void;
}

export interface RunResult {
  target: string;
  seconds: number;
  executions: number;
  execPerSec: number;
  /** edges covered (libFuzzer's `cov`) and features (`ft`) at the end of the run */
  coverage: number;
  features: number;
  corpus: number;
  peakRssMb: number;
  newUnits: number;
  /** files libFuzzer wrote for findings */
  findings: string[];
  exitCode: number | null;
  /** the last lines of the fuzzer's output, for a report when something went wrong */
  tail: string[];
}

/** libFuzzer dictionary entries: one quoted token a line, bytes outside printable ASCII escaped. */
export function dictionaryText(tokens: readonly string[]): string {
  const esc = (s: string) =>
    [...Buffer.from(s, 'latin1')].map((b) => (b === 0x22 || b === 0x5c ? `\\${String.fromCharCode(b)}` : b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
  const unique = [...new Set(tokens.filter((t) => t.length > 0 && t.length <= 64))];
  return unique.map((t) => `"${esc(t)}"`).join('\n') + '\n';
}

const num = (text: string, re: RegExp): number | undefined => {
  let last: number | undefined;
  for (const m of text.matchAll(re)) last = Number(m[1]);
  return last;
};

/** Reads libFuzzer's statistics from its output. */
export function parseFuzzerOutput(out: string): Omit<RunResult, 'target' | 'seconds' | 'findings' | 'exitCode' | 'tail'> {
  const covLine = [...out.matchAll(/^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)\//gm)].pop();
  const done = [...out.matchAll(/^Done (\d+) runs in (\d+) second/gm)].pop();
  return {
    executions: num(out, /stat::number_of_executed_units:\s*(\d+)/g) ?? num(out, /^Done (\d+) runs/gm) ?? (covLine ? Number(covLine[1]) : 0),
    // from libFuzzer's `Done N runs in S second(s)`: its exec/s statistic is printed twice, the second time as 0
    execPerSec: done ? Math.round(Number(done[1]) / Math.max(1, Number(done[2]))) : 0,
    coverage: covLine ? Number(covLine[2]) : 0,
    features: covLine ? Number(covLine[3]) : 0,
    corpus: covLine ? Number(covLine[4]) : 0,
    peakRssMb: num(out, /stat::peak_rss_mb:\s*(\d+)/g) ?? 0,
    newUnits: num(out, /stat::new_units_added:\s*(\d+)/g) ?? 0,
  };
}

/**
 * The environment of the fuzzer process: the caller's, without a test runner's V8 coverage
 * directory and preloaded modules (set when the suite runs this). Their work at exit outlasts
 * libFuzzer's per-input alarm, which then ends the finished fuzzer with SIGALRM; the fuzzer
 * measures its own coverage anyway.
 */
function fuzzerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_V8_COVERAGE;
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * The fuzzer's exit status. libFuzzer's per-input watchdog (setitimer, SIGALRM) stays armed after
 * its run ends; when Node's own exit then outlasts one period (a loaded machine), the finished
 * process dies of that SIGALRM. A run whose final line ("Done N runs in T second(s)") was printed
 * and whose watchdog never reported a slow input ("ALARM: working on the last Unit") ended
 * cleanly; a real hang is still a finding (its timeout- file, and no Done line).
 */
function endedAfterRun(code: number | null, signal: NodeJS.Signals | null, output: string[]): number | null {
  if (signal === null) return code;
  const done = output.some((l) => /^Done \d+ runs in \d+ second/.test(l));
  const hang = output.some((l) => l.includes('ALARM: working on the last Unit'));
  output.push(`fuzz: the fuzzer process was ended by ${signal}${done && !hang ? ' after its run had finished' : ''}`);
  return signal === 'SIGALRM' && done && !hang ? 0 : null;
}

export async function runTarget(t: FuzzTarget, o: RunOptions): Promise<RunResult> {
  const require = createRequire(import.meta.url);
  const cli = require.resolve('@jazzer.js/core/dist/cli.js');
  const moduleFile = join(o.root, 'dist', 'fuzz', 'targets', `${t.module}.js`);
  if (!existsSync(moduleFile)) throw new Error(`${moduleFile} is missing: build first (bash scripts/setup.sh)`);
  for (const d of [o.corpusOut, o.crashDir]) mkdirSync(d, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), `ulysses-fuzz-${t.name}-`));
  try {
    const dict = join(work, 'tokens.dict');
    writeFileSync(dict, dictionaryText(await t.dictionary()));
    const before = new Set(readdirSync(o.crashDir));
    const includes = [join(o.root, 'dist', 'src') + '/', ...t.instrument];
    const args = [
      // a JS heap past this is an unbounded allocation: V8 aborts, libFuzzer saves the input
      `--max-old-space-size=${o.rssLimitMb}`,
      cli,
      moduleFile,
      o.corpusOut,
      ...o.corpusIn.filter((d) => existsSync(d)),
      '--sync',
      `--timeout=${t.timeoutMs}`,
      ...(t.disableBugDetectors ?? []).map((d) => `--disable_bug_detectors=${d}`),
      ...includes.flatMap((i) => ['-i', i]),
      '-e', '/dist/fuzz/', '-e', '/@jazzer.js/',
      '--',
      `-max_len=${t.maxLen}`,
      `-rss_limit_mb=${o.rssLimitMb + 512}`,
      `-artifact_prefix=${o.crashDir}/`,
      `-dict=${dict}`,
      '-print_final_stats=1',
      ...(o.merge ? ['-merge=1'] : [`-max_total_time=${Math.max(1, Math.round(o.seconds))}`]),
    ];
    const started = Date.now();
    const output: string[] = [];
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, args, {
        cwd: work,
        env: { ...fuzzerEnv(), ...o.env, FUZZ_WORKDIR: work },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // libFuzzer stops itself at max_total_time; this only catches a fuzzer that cannot stop
      const guard = setTimeout(() => child.kill('SIGKILL'), (o.seconds + 120) * 1000);
      let pending = '';
      const take = (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const l of lines) {
          output.push(l);
          o.onLine?.(l);
        }
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.on('error', (e) => {
        clearTimeout(guard);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(guard);
        if (pending) output.push(pending);
        resolve(endedAfterRun(code, signal, output));
      });
    });
    const text = output.join('\n');
    const findings = readdirSync(o.crashDir)
      .filter((f) => !before.has(f) && /^(crash|timeout|oom|leak|slow-unit)-/.test(f))
      .map((f) => join(o.crashDir, f));
    return {
      target: t.name,
      seconds: (Date.now() - started) / 1000,
      ...parseFuzzerOutput(text),
      findings,
      exitCode,
      tail: output.slice(-40),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
