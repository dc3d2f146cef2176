/**
 * Hostfiles in DeepSpeed's grammar (`hostname slots=N`, `#` comments, blank lines; `host:N` is
 * accepted too), DeepSpeed's `--include` / `--exclude` selectors, and rank placement (ranks in
 * hostfile order, host 0's slots first). Every problem names the file, the line and the fix, and
 * all of them are reported at once. Pure apart from loadHostfile's read; never spawns anything.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from './ConfigError.js';

export interface HostEntry {
  /** host name or address as written (may carry `user@` for ssh) */
  host: string;
  /** slot (device) indices used on this host, ascending: 0..slots-1 unless filtered */
  slots: number[];
  /** 1-based line in the hostfile (absent for the default localhost entry) */
  line?: number;
}

export interface RankPlacement {
  rank: number;
  host: string;
  hostIndex: number;
  localRank: number;
  localWorldSize: number;
  /** the slot index on the host (DeepSpeed's device id) */
  slot: number;
}

export const MAX_SLOTS = 4096;
const HOST_RE = /^([A-Za-z0-9._-]+@)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
// at least two colons: `host:N` with a hex-looking name (`cafe:2`) is not an IPv6 address
const IPV6_RE = /^[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*$/;

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** No hostfile: this machine with `slots` ranks. */
export function defaultHosts(slots: number, host = 'localhost'): HostEntry[] {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS)
    throw new ConfigError([{ key: 'slots', value: slots, message: 'default slots must be a whole number from 1', fix: `use 1..${MAX_SLOTS}` }], 'invalid hosts');
  return [{ host, slots: range(slots) }];
}

export function parseHostfile(text: string, file: string): HostEntry[] {
  const hosts: HostEntry[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const lineNo = i + 1;
    const where = `${file}:${lineNo}`;
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const tokens = line.split(/\s+/);
    let host = tokens[0]!;
    let slotsText: string | undefined;
    const colon = host.lastIndexOf(':');
    if (tokens.length === 1 && colon > 0 && !IPV6_RE.test(host)) {
      slotsText = host.slice(colon + 1);
      host = host.slice(0, colon);
    }
    let bad = false;
    for (const tok of tokens.slice(1)) {
      const m = /^slots=(.*)$/.exec(tok);
      if (m && slotsText === undefined) slotsText = m[1];
      else {
        problems.push({ source: where, value: tok, message: m ? 'slots given twice' : 'unexpected text', fix: "write 'host slots=N'" });
        bad = true;
      }
    }
    if (!HOST_RE.test(host) && !IPV6_RE.test(host)) {
      problems.push({ source: where, value: host, message: 'is not a valid host name or address', fix: 'use letters, digits, dots and dashes (optionally user@host)' });
      bad = true;
    }
    let slots = 0;
    if (slotsText === undefined) {
      problems.push({ source: where, value: host, message: 'missing slots', fix: `write '${host} slots=N'` });
      bad = true;
    } else if (!/^\d+$/.test(slotsText) || Number(slotsText) < 1 || Number(slotsText) > MAX_SLOTS) {
      problems.push({ source: where, value: slotsText, message: 'slots must be a whole number', fix: `use 1..${MAX_SLOTS}` });
      bad = true;
    } else slots = Number(slotsText);
    const prev = seen.get(host);
    if (prev !== undefined) {
      problems.push({ source: where, value: host, message: `duplicate host (first on line ${prev})`, fix: 'list each host once with its total slots' });
      return;
    }
    seen.set(host, lineNo);
    if (!bad) hosts.push({ host, slots: range(slots), line: lineNo });
  });
  if (hosts.length === 0 && problems.length === 0) problems.push({ source: file, message: 'lists no hosts', fix: "add lines like 'localhost slots=2'" });
  if (problems.length) throw new ConfigError(problems, `invalid hostfile ${file}`);
  return hosts;
}

export function loadHostfile(path: string): HostEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([{ source: path, message: `cannot read hostfile (${(e as Error).message})`, fix: 'check the --nodes path' }], 'invalid hostfile');
  }
  return parseHostfile(text, path);
}

/**
 * DeepSpeed's selectors: `host1@host2:0,2` — hosts separated by `@`, optionally with the slot
 * indices to keep (`--include`) or drop (`--exclude`). Only one of the two may be given.
 */
export function selectHosts(hosts: HostEntry[], sel: { include?: string; exclude?: string }): HostEntry[] {
  if (sel.include !== undefined && sel.exclude !== undefined)
    throw new ConfigError([{ key: '--include/--exclude', message: 'only one of --include and --exclude may be given', fix: 'drop one of them' }], 'invalid host selection');
  const spec = sel.include ?? sel.exclude;
  if (spec === undefined) return hosts;
  const flag = sel.include !== undefined ? '--include' : '--exclude';
  const problems: ConfigProblem[] = [];
  const picked = new Map<string, Set<number> | 'all'>();
  for (const part of spec.split('@').map((s) => s.trim()).filter(Boolean)) {
    const colon = part.indexOf(':');
    const name = colon >= 0 ? part.slice(0, colon) : part;
    const entry = hosts.find((h) => h.host === name);
    if (!entry) {
      problems.push({ key: flag, value: name, message: 'host is not in the hostfile', fix: `use one of ${hosts.map((h) => h.host).join(', ')}` });
      continue;
    }
    if (colon < 0) {
      picked.set(name, 'all');
      continue;
    }
    const set = new Set<number>();
    for (const s of part.slice(colon + 1).split(',')) {
      const n = Number(s);
      if (!/^\d+$/.test(s.trim()) || !entry.slots.includes(n)) problems.push({ key: flag, value: `${name}:${s}`, message: 'slot is not on that host', fix: `use slots ${entry.slots.join(',')}` });
      else set.add(n);
    }
    picked.set(name, set);
  }
  if (problems.length) throw new ConfigError(problems, 'invalid host selection');
  const out: HostEntry[] = [];
  for (const h of hosts) {
    const p = picked.get(h.host);
    let slots: number[];
    if (sel.include !== undefined) slots = p === undefined ? [] : p === 'all' ? h.slots : h.slots.filter((s) => p.has(s));
    else slots = p === undefined ? h.slots : p === 'all' ? [] : h.slots.filter((s) => !p.has(s));
    if (slots.length) out.push({ ...h, slots });
  }
  if (out.length === 0) throw new ConfigError([{ key: flag, value: spec, message: 'selects no slots', fix: 'keep at least one host' }], 'invalid host selection');
  return out;
}

/** Ranks in hostfile order: host 0's slots first. */
export function placeRanks(hosts: HostEntry[]): RankPlacement[] {
  const out: RankPlacement[] = [];
  hosts.forEach((h, hostIndex) =>
    h.slots.forEach((slot, localRank) => out.push({ rank: out.length, host: h.host, hostIndex, localRank, localWorldSize: h.slots.length, slot })),
  );
  return out;
}

export function worldSizeOf(hosts: HostEntry[]): number {
  return hosts.reduce((n, h) => n + h.slots.length, 0);
}
