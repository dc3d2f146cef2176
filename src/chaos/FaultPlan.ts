/**
 * Fault plans: a YAML file that says which faults to inject into a job, when, and where.
 * parseFaultPlan() validates every field and collects every problem (each naming its field,
 * e.g. `faults[2].at_step`), so a bad plan is refused before anything starts.
 * Must never start a process or touch the file system beyond reading the plan.
 */
import { readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';

export const FAULT_KINDS = [
  'crash', // SIGKILL through the node agent
  'freeze', // SIGSTOP, SIGCONT after duration_s
  'hang', // the rank's loop stops advancing, its heartbeats go on
  'collective_crash', // the rank dies inside a collective (synthetic: a store barrier)
  'nan_gradients', // non-finite gradients (Inf with value: inf)
  'vanishing_gradients', // loss scaled by `scale` (default 1e-8)
  'exploding_gradients', // loss scaled by `scale` (default 1e8)
  'slow', // delay_ms per step for duration_s (or steps)
  'net_drop',
  'net_delay',
  'net_duplicate',
  'net_reorder',
  'partition', // every control frame of the target dropped for duration_s
  'checkpoint_corrupt', // the newest checkpoint damaged between attempts (mode: flip|truncate); with at_step it also kills the target there to start the next attempt
  'checkpoint_write_fail', // the checkpoint writer throws mid-write
  'restart_storm', // the target dies at every start
  'coordinator_pause', // SIGSTOP of `up` (its coordinator), SIGCONT after duration_s (default 10)
  'coordinator_kill', // SIGKILL of `up`, then `up` again with the same config (it resumes by itself)
  'malformed_row', // the job's dataset has a malformed JSON line at `row` (default 3)
  'disk_full', // output_dir is a small tmpfs, filled up before step N: the next checkpoint write finds no space
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults the rank process injects itself (through ChaosHooks and the rank-side fault proxy). */
export const RANK_SIDE = new Set<FaultKind>([
  'hang', 'collective_crash', 'nan_gradients', 'vanishing_gradients', 'exploding_gradients', 'slow',
  'net_drop', 'net_delay', 'net_duplicate', 'net_reorder', 'partition', 'checkpoint_write_fail', 'restart_storm',
]);
/** Faults that end a rank (the job must detect them and restart). */
export const FAILING = new Set<FaultKind>(['crash', 'freeze', 'hang', 'collective_crash', 'nan_gradients', 'partition', 'checkpoint_corrupt', 'checkpoint_write_fail', 'restart_storm']);
export const NET = new Set<FaultKind>(['net_drop', 'net_delay', 'net_duplicate', 'net_reorder', 'partition']);
/** Faults of the coordinator itself: the harness runs `up` as a child process to inject them. */
export const COORDINATOR = new Set<FaultKind>(['coordinator_pause', 'coordinator_kill']);
/** Faults a restart cannot cure: the job must fail at once, with one message and no restart. */
export const DETERMINISTIC = new Set<FaultKind>(['malformed_row', 'disk_full']);

export interface FaultTrigger {
  /** before optimizer step N (the rank has finished N-1) */
  atStep?: number;
  /** seconds after training started (rank side) or after the job started (harness side) */
  atTimeS?: number;
  /** probability per step, drawn from the plan's seed; fires at most once */
  probability?: number;
}

export interface Fault {
  index: number;
  kind: FaultKind;
  trigger: FaultTrigger;
  target: { rank?: number; host?: number };
  durationS: number;
  /** net_*: probability that a frame is affected (default 1) */
  p: number;
  /** slow, net_delay: milliseconds */
  delayMs: number;
  /** vanishing/exploding: loss multiplier */
  scale: number;
  /** nan_gradients: nan | inf */
  value: 'nan' | 'inf';
  /** checkpoint_corrupt: flip | truncate */
  mode: 'flip' | 'truncate';
  /** net_*: which message types (default: every type) */
  types: string[] | null;
  /** net_*: coordinator (the ROUTER's side) or rank (the DEALER's side) */
  side: 'rank' | 'coordinator';
  /** malformed_row: the (1-based) line of the dataset file that is malformed */
  row: number;
}

export interface FaultPlan {
  name: string;
  seed: number;
  workload: string | null;
  /** ranks on one loopback host, or explicit hosts */
  hosts: { host: string; slots: number }[] | null;
  /**
   * recover (default): the job restarts and ends with the fault-free weights; give_up (restart
   * storms); absorb: the gradient policy handles the fault inside the run (NaN steps skipped,
   * vanishing/exploding steps rescaled or clipped), so the weights legitimately differ from the
   * fault-free run's and the harness checks the policy's reaction instead; fail_fast: a failure
   * no restart can cure (malformed data, a full disk) fails the job at once, without a restart
   */
  expect: 'recover' | 'give_up' | 'absorb' | 'fail_fast';
  /** job config overrides (merged over the harness's defaults) */
  job: Record<string, unknown>;
  faults: Fault[];
}

export class FaultPlanError extends Error {
  readonly code = 'ERR_CHAOS_PLAN';
  constructor(readonly problems: string[], source = 'fault plan') {
    super(`${source} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'FaultPlanError';
  }
}

const TOP_KEYS = new Set(['name', 'seed', 'workload', 'ranks', 'hosts', 'expect', 'job', 'faults', 'description']);
const FAULT_KEYS = new Set(['kind', 'at_step', 'at_time_s', 'probability', 'target', 'rank', 'host', 'duration_s', 'p', 'delay_ms', 'scale', 'value', 'mode', 'types', 'side', 'row', 'note']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a parsed plan object; throws FaultPlanError listing every problem. */
export function validateFaultPlan(raw: unknown, source = 'fault plan'): FaultPlan {
  const problems: string[] = [];
  if (!isObj(raw)) throw new FaultPlanError(['the plan must be a mapping with a `faults` list'], source);
  for (const k of Object.keys(raw)) if (!TOP_KEYS.has(k)) problems.push(`${k}: unknown key (known: ${[...TOP_KEYS].join(', ')})`);
  const num = (path: string, v: unknown, o: { int?: boolean; min?: number; max?: number; gt?: number } = {}): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || (o.int && !Number.isInteger(v)) || (o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max) || (o.gt !== undefined && v <= o.gt)) {
      const want = [o.int ? 'a whole number' : 'a number', o.min !== undefined ? `>= ${o.min}` : '', o.gt !== undefined ? `> ${o.gt}` : '', o.max !== undefined ? `<= ${o.max}` : ''].filter(Boolean).join(' ');
      problems.push(`${path}: must be ${want}, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  };
  const name = typeof raw.name === 'string' ? raw.name : 'unnamed';
  const seed = num('seed', raw.seed, { int: true, min: 0 }) ?? 0;
  const workload = raw.workload === undefined ? null : typeof raw.workload === 'string' ? raw.workload : (problems.push('workload: must be a string (train or synthetic)'), null);
  let hosts: FaultPlan['hosts'] = null;
  if (raw.hosts !== undefined) {
    if (!Array.isArray(raw.hosts) || raw.hosts.length === 0) problems.push('hosts: must be a non-empty list of {host, slots}');
    else {
      hosts = raw.hosts.map((h, i) => {
        const o = isObj(h) ? h : {};
        if (typeof o.host !== 'string') problems.push(`hosts[${i}].host: must be a string`);
        return { host: String(o.host ?? 'localhost'), slots: num(`hosts[${i}].slots`, o.slots, { int: true, min: 1 }) ?? 1 };
      });
    }
  }
  if (raw.ranks !== undefined) {
    const n = num('ranks', raw.ranks, { int: true, min: 1, max: 64 });
    if (hosts) problems.push('ranks: give either ranks or hosts, not both');
    else if (n !== undefined) hosts = [{ host: 'localhost', slots: n }];
  }
  const expect = raw.expect === undefined ? 'recover' : raw.expect === 'recover' || raw.expect === 'give_up' || raw.expect === 'absorb' || raw.expect === 'fail_fast' ? raw.expect : (problems.push(`expect: must be recover, give_up, absorb or fail_fast, got ${JSON.stringify(raw.expect)}`), 'recover');
  const job = raw.job === undefined ? {} : isObj(raw.job) ? raw.job : (problems.push('job: must be a mapping of job config keys'), {});
  const world = hosts ? hosts.reduce((a, h) => a + h.slots, 0) : null;
  const faults: Fault[] = [];
  if (!Array.isArray(raw.faults)) problems.push('faults: must be a list (it may be empty for a fault-free run)');
  else {
    raw.faults.forEach((f, index) => {
      const at = `faults[${index}]`;
      if (!isObj(f)) {
        problems.push(`${at}: must be a mapping with a kind`);
        return;
      }
      for (const k of Object.keys(f)) if (!FAULT_KEYS.has(k)) problems.push(`${at}.${k}: unknown key (known: ${[...FAULT_KEYS].join(', ')})`);
      const kind = f.kind as FaultKind;
      if (!FAULT_KINDS.includes(kind)) {
        problems.push(`${at}.kind: must be one of ${FAULT_KINDS.join(', ')}; got ${JSON.stringify(f.kind)}`);
        return;
      }
      const trigger: FaultTrigger = {
        atStep: num(`${at}.at_step`, f.at_step, { int: true, min: 1 }),
        atTimeS: num(`${at}.at_time_s`, f.at_time_s, { min: 0 }),
        probability: num(`${at}.probability`, f.probability, { min: 0, max: 1 }),
      };
      const nTriggers = [f.at_step, f.at_time_s, f.probability].filter((v) => v !== undefined).length;
      if (nTriggers > 1) problems.push(`${at}: give one trigger (at_step, at_time_s or probability), not ${nTriggers}`);
      // net faults without a trigger apply for the whole run; the others need one (a storm: every start)
      if (nTriggers === 0 && !NET.has(kind) && kind !== 'restart_storm' && kind !== 'checkpoint_corrupt' && kind !== 'malformed_row') problems.push(`${at}: needs a trigger: at_step, at_time_s or probability`);
      if (kind === 'malformed_row' && nTriggers > 0) problems.push(`${at}: malformed_row is in the data from the start; give no trigger`);
      if ((COORDINATOR.has(kind) || kind === 'disk_full') && f.probability !== undefined) problems.push(`${at}: ${kind} fires once: give at_step or at_time_s`);
      if (kind === 'checkpoint_corrupt' && (f.at_time_s !== undefined || f.probability !== undefined)) problems.push(`${at}: checkpoint_corrupt damages the newest checkpoint between attempts; give at_step (the crash that starts the next attempt) or nothing`);
      const tgt = isObj(f.target) ? f.target : { rank: f.rank, host: f.host };
      const target: Fault['target'] = { rank: num(`${at}.target.rank`, tgt.rank, { int: true, min: 0 }), host: num(`${at}.target.host`, tgt.host, { int: true, min: 0 }) };
      if (target.rank !== undefined && target.host !== undefined) problems.push(`${at}.target: give a rank or a host, not both`);
      if (target.rank === undefined && target.host === undefined) target.rank = kind === 'checkpoint_write_fail' ? 0 : world !== null ? world - 1 : 1;
      if (world !== null && target.rank !== undefined && target.rank >= world) problems.push(`${at}.target.rank: ${target.rank} is outside the world of ${world} ranks`);
      if (hosts && target.host !== undefined && target.host >= hosts.length) problems.push(`${at}.target.host: ${target.host} is outside the ${hosts.length} host(s)`);
      if (kind === 'checkpoint_write_fail' && (target.host !== undefined || target.rank !== 0)) problems.push(`${at}.target: checkpoint_write_fail applies to the checkpoint writer: target rank 0`);
      const durationS = num(`${at}.duration_s`, f.duration_s, { gt: 0 }) ?? (kind === 'freeze' || kind === 'partition' ? 5 : kind === 'slow' ? 1 : kind === 'coordinator_pause' ? 10 : 0);
      const row = num(`${at}.row`, f.row, { int: true, min: 1 }) ?? 3;
      if (f.row !== undefined && kind !== 'malformed_row') problems.push(`${at}.row: only malformed_row has a row`);
      const p = num(`${at}.p`, f.p, { min: 0, max: 1 }) ?? (kind === 'net_drop' ? 0.2 : 1);
      const delayMs = num(`${at}.delay_ms`, f.delay_ms, { min: 0 }) ?? (kind === 'slow' ? 200 : kind === 'net_delay' ? 50 : 0);
      const scale = num(`${at}.scale`, f.scale, { gt: 0 }) ?? (kind === 'vanishing_gradients' ? 1e-8 : 1e8);
      const value = f.value === undefined ? 'nan' : f.value === 'nan' || f.value === 'inf' ? f.value : (problems.push(`${at}.value: must be nan or inf`), 'nan');
      const mode = f.mode === undefined ? 'flip' : f.mode === 'flip' || f.mode === 'truncate' ? f.mode : (problems.push(`${at}.mode: must be flip or truncate`), 'flip');
      let types: string[] | null = null;
      if (f.types !== undefined) {
        if (!Array.isArray(f.types) || f.types.some((t) => typeof t !== 'string')) problems.push(`${at}.types: must be a list of message types`);
        else types = f.types as string[];
      }
      const side = f.side === undefined ? 'rank' : f.side === 'rank' || f.side === 'coordinator' ? f.side : (problems.push(`${at}.side: must be rank or coordinator`), 'rank');
      if (f.side !== undefined && !NET.has(kind)) problems.push(`${at}.side: only control-plane faults (net_*, partition) have a side`);
      faults.push({ index, kind, trigger, target, durationS, p, delayMs, scale, value, mode, types, side, row });
    });
  }
  if (expect === 'give_up' && !faults.some((f) => f.kind === 'restart_storm')) problems.push('expect: give_up is for plans with a restart_storm fault');
  const absorbable = new Set<FaultKind>(['nan_gradients', 'vanishing_gradients', 'exploding_gradients']);
  if (expect === 'absorb' && (faults.length === 0 || faults.some((f) => !absorbable.has(f.kind)))) {
    problems.push(`expect: absorb is for plans whose faults are all gradient faults (${[...absorbable].join(', ')}) that the gradient policy handles in the run`);
  }
  if (faults.some((f) => COORDINATOR.has(f.kind))) {
    if (workload !== 'train') problems.push('workload: coordinator faults run `up` itself, with the train workload: say `workload: train`');
    if (faults.some((f) => !COORDINATOR.has(f.kind))) problems.push('faults: coordinator faults (coordinator_pause, coordinator_kill) cannot be mixed with other faults in one plan');
    if (hosts && hosts.length > 1) problems.push('hosts: coordinator faults run `up` on this machine: give ranks, not hosts');
  }
  const deterministic = faults.filter((f) => DETERMINISTIC.has(f.kind));
  if (expect === 'fail_fast' && (faults.length === 0 || deterministic.length !== faults.length)) problems.push(`expect: fail_fast is for plans whose faults are all ones no restart can cure (${[...DETERMINISTIC].join(', ')})`);
  if (deterministic.length && expect !== 'fail_fast') problems.push(`expect: a plan with ${deterministic[0]!.kind} must say \`expect: fail_fast\` (a restart cannot cure it)`);
  if (faults.some((f) => f.kind === 'malformed_row') && workload !== 'train') problems.push('workload: malformed_row needs the train workload (its data is read by the training loop)');
  if (faults.some((f) => f.kind === 'restart_storm') && raw.expect === undefined) {
    // a storm cannot be recovered from: say so instead of silently expecting it
    problems.push('expect: a plan with restart_storm must say `expect: give_up`');
  }
  if (problems.length) throw new FaultPlanError(problems, source);
  return { name, seed, workload, hosts, expect, job, faults };
}

export function parseFaultPlan(text: string, source = 'fault plan'): FaultPlan {
  let raw: unknown;
  try {
    raw = loadYaml(text);
  } catch (e) {
    throw new FaultPlanError([`not valid YAML: ${(e as Error).message.split('\n')[0]}`], source);
  }
  return validateFaultPlan(raw, source);
}

export function loadFaultPlan(path: string): FaultPlan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FaultPlanError([`cannot read the plan: ${(e as Error).message}`], path);
  }
  return parseFaultPlan(text, path);
}

/** A deterministic draw in [0, 1) keyed by the plan's seed, the fault, the rank and the step. */
export function keyedUniform(seed: number, fault: number, rank: number, step: number): number {
  // splitmix-style integer mixing: no state, same value on every run and every machine
  let x = (BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(fault) * 0xbf58476d1ce4e5b9n + BigInt(rank) * 0x94d049bb133111ebn + BigInt(step)) & 0xffffffffffffffffn;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  x ^= x >> 31n;
  return Number(x >> 11n) / 2 ** 53;
}

/** The first step at which a probability trigger fires for this rank (null: never within maxSteps). */
export function probabilityStep(seed: number, fault: Fault, rank: number, maxSteps: number): number | null {
  const p = fault.trigger.probability ?? 0;
  for (let s = 1; s <= maxSteps; s++) if (keyedUniform(seed, fault.index, rank, s) < p) return s;
  return null;
}
