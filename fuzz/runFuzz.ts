/**
 * `npm run fuzz -- --seconds N [--target NAME[,NAME...]] [--record] [--minimize]`: runs the fuzz
 * targets of fuzz/targets.ts one after the other (never in parallel: the machine is shared), N
 * seconds each when targets are named, N seconds split over all of them otherwise. New corpus
 * inputs go to fuzz/corpus/<target>/, findings to fuzz/crashes/<target>/ (both overridable for
 * the test suite: --corpus-out, --crash-dir, with <target> standing for the target's name).
 * --record appends each run's figures to fuzz/CAMPAIGNS.md; --minimize rewrites each corpus to
 * the smallest set of inputs with the same coverage (libFuzzer's merge) instead of fuzzing.
 * --json prints the results as one JSON line at the end. Exit status: 0 without findings, 1 with
 * findings, 2 for bad flags.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareFuzzerAddon } from './compat/fuzzerAddon.js';
import { runTarget, type RunResult } from './runTarget.js';
import { TARGETS, targetByName, type FuzzTarget } from './targets.js';

interface Flags {
  seconds: number;
  targets: FuzzTarget[];
  record: boolean;
  minimize: boolean;
  json: boolean;
  verbose: boolean;
  corpusOut?: string;
  crashDir?: string;
  rssLimitMb: number;
}

class UsageError extends Error {}

const USAGE = 'usage: npm run fuzz -- --seconds N [--target NAME[,NAME...]] [--record] [--minimize] [--json] [--verbose] [--corpus-out DIR] [--crash-dir DIR] [--rss-limit-mb MB]';

function parseFlags(argv: readonly string[]): Flags {
  const f: Flags = { seconds: NaN, targets: [], record: false, minimize: false, json: false, verbose: false, rssLimitMb: 2048 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--seconds') f.seconds = Number(value());
    else if (a === '--target') {
      for (const n of value().split(',')) {
        const t = targetByName(n.trim());
        if (!t) throw new UsageError(`unknown target '${n}' (targets: ${TARGETS.map((x) => x.name).join(', ')})`);
        f.targets.push(t);
      }
    } else if (a === '--record') f.record = true;
    else if (a === '--minimize') f.minimize = true;
    else if (a === '--json') f.json = true;
    else if (a === '--verbose') f.verbose = true;
    else if (a === '--corpus-out') f.corpusOut = value();
    else if (a === '--crash-dir') f.crashDir = value();
    else if (a === '--rss-limit-mb') f.rssLimitMb = Number(value());
    else throw new UsageError(`unknown flag ${a}`);
  }
  // a merge has no time budget of its own; this bounds it
  if (f.minimize && Number.isNaN(f.seconds)) f.seconds = 600;
  if (!(Number.isFinite(f.seconds) && f.seconds >= 1)) throw new UsageError('--seconds must be a number >= 1');
  if (!(Number.isInteger(f.rssLimitMb) && f.rssLimitMb >= 256)) throw new UsageError('--rss-limit-mb must be a whole number >= 256');
  return f;
}

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const corpusOf = (t: FuzzTarget) => join(root, 'fuzz', 'corpus', t.name);
const forTarget = (dir: string, t: FuzzTarget) => dir.replaceAll('<target>', t.name);

/** One CAMPAIGNS.md table row: date, target, seconds, executions, exec/s, edges, corpus, findings. */
function campaignRow(r: RunResult): string {
  const date = new Date().toISOString().slice(0, 10);
  const found = r.findings.length === 0 ? 'none' : r.findings.map((f) => f.split('/').pop()).join(', ');
  return `| ${date} | ${r.target} | ${Math.round(r.seconds)} | ${r.executions} | ${r.execPerSec} | ${r.coverage} | ${r.features} | ${r.corpus} | ${r.peakRssMb} | ${found} |\n`;
}

async function main(): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`fuzz: ${e.message}\n${USAGE}`);
    return 2;
  }
  const targets = flags.targets.length > 0 ? flags.targets : [...TARGETS];
  const seconds = flags.targets.length > 0 ? flags.seconds : flags.seconds / targets.length;
  const addon = prepareFuzzerAddon();
  console.error(`fuzz: ${addon.note}`);
  const results: RunResult[] = [];
  for (const t of targets) {
    const crashDir = flags.crashDir ? forTarget(flags.crashDir, t) : join(root, 'fuzz', 'crashes', t.name);
    let corpusOut = flags.corpusOut ? forTarget(flags.corpusOut, t) : corpusOf(t);
    let corpusIn = corpusOut === corpusOf(t) ? [] : [corpusOf(t)];
    let merged: string | undefined;
    if (flags.minimize) {
      // merge the corpus into an empty folder, which then replaces it
      merged = mkdtempSync(join(root, 'fuzz', 'corpus', `.${t.name}-min-`));
      corpusIn = [corpusOf(t)];
      corpusOut = merged;
    }
    console.error(`fuzz: ${t.name}: ${flags.minimize ? 'minimizing its corpus' : `${seconds.toFixed(0)} s`} (${t.what})`);
    const r = await runTarget(t, {
      root,
      seconds,
      corpusOut,
      corpusIn,
      crashDir,
      env: addon.env,
      rssLimitMb: flags.rssLimitMb,
      merge: flags.minimize,
      onLine: flags.verbose ? (l) => console.error(l) : undefined,
    });
    if (merged) {
      if (r.exitCode === 0 && readdirSync(merged).length > 0) {
        rmSync(corpusOf(t), { recursive: true, force: true });
        renameSync(merged, corpusOf(t));
      } else rmSync(merged, { recursive: true, force: true });
      console.error(`fuzz: ${t.name}: corpus now ${existsSync(corpusOf(t)) ? readdirSync(corpusOf(t)).length : 0} inputs`);
      continue;
    }
    results.push(r);
    const status = r.findings.length > 0 ? `FINDINGS ${r.findings.join(' ')}` : r.exitCode === 0 ? 'clean' : `fuzzer exited ${r.exitCode}`;
    console.error(`fuzz: ${t.name}: ${r.executions} executions in ${r.seconds.toFixed(0)} s (${r.execPerSec}/s), ${r.coverage} edges, ${r.features} features, corpus ${r.corpus}, peak ${r.peakRssMb} MB: ${status}`);
    if (r.exitCode !== 0 && (flags.verbose === false || r.findings.length === 0)) console.error(r.tail.join('\n'));
    if (flags.record) appendFileSync(join(root, 'fuzz', 'CAMPAIGNS.md'), campaignRow(r));
  }
  if (flags.json) console.log(JSON.stringify(results.map(({ tail: _tail, ...r }) => r)));
  return results.some((r) => r.findings.length > 0 || r.exitCode !== 0) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`fuzz: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
