/**
 * What every fuzz target shares: the finding type for an input a parser accepted but should not
 * have (or turned into a value that breaks its own contract), the check that lets exactly the
 * parser's documented error through, and a scratch folder for parsers that read files.
 * A target throws for a finding and returns for everything else; it must never catch an error
 * that is not the parser's documented one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A parser broke its contract without throwing (accepted an invalid input, returned a bad value). */
export class ContractViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContractViolation';
  }
}

export function check(ok: boolean, message: string): void {
  if (!ok) throw new ContractViolation(message);
}

/**
 * Runs `parse`; returns its value, or undefined when it threw an error `documented` accepts.
 * Anything else it threw propagates: that is a finding.
 */
export function expectOnly<T>(parse: () => T, documented: (e: unknown) => boolean): T | undefined {
  try {
    return parse();
  } catch (e) {
    if (documented(e)) return undefined;
    throw e;
  }
}

const dirs = new Map<string, string>();

/**
 * A scratch folder for one target, made once per process by `setup`. Under the fuzz runner it is
 * inside FUZZ_WORKDIR, which the runner removes when the fuzzer exits (libFuzzer leaves without
 * running Node's exit handlers); elsewhere (tests) it is a temporary folder removed at exit.
 */
export function scratchDir(target: string, setup: (dir: string) => void): string {
  const known = dirs.get(target);
  if (known) return known;
  const base = process.env.FUZZ_WORKDIR;
  let dir: string;
  if (base) dir = mkdtempSync(join(base, `${target}-`));
  else {
    dir = mkdtempSync(join(tmpdir(), `ulysses-fuzz-${target}-`));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  setup(dir);
  dirs.set(target, dir);
  return dir;
}

/** Splits an input at the first NUL byte: [head, rest] (rest empty when there is none). */
export function splitAtNul(data: Buffer): [Buffer, Buffer] {
  const i = data.indexOf(0);
  return i < 0 ? [data, Buffer.alloc(0)] : [data.subarray(0, i), data.subarray(i + 1)];
}
