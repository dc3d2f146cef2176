/**
 * The rank side of a fault plan: read from ULYSSES_CHAOS (JSON set by the harness) by the rank
 * command, which hands it to the rank runtime; it wraps the rank's control transport in a
 * FaultProxy and implements the ChaosHooks the workload calls (RankFaults).
 * A fault fires at most once per job (a marker file in output_dir records it, with the wall-clock
 * time, so a restarted rank does not fire it again and the harness can time it), except a
 * restart storm, which fires at every start. What each fault did is counted (frames dropped,
 * steps slowed or scaled, values poisoned, deaths) and written beside the markers, per rank and
 * incarnation, so the harness can prove it had an effect. Must never act on a fault meant for
 * another rank.
 */
import { mkdirSync, readdirSync, renameSync, statSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { RankFaults } from '../actors/rank/RankRuntime.js';
import type { JobSpec } from '../config/JobSpec.js';
import type { Transport } from '../transport/Transport.js';
import type { Logger } from '../util/Logger.js';
import { ChaosFault } from './ChaosFault.js';
import { CHAOS_ENV } from './chaosEnv.js';
import { keyedUniform, type Fault } from './FaultPlan.js';
import { FaultProxy, type NetRule } from './FaultProxy.js';
import { firedRule, isUntriggered, netKindOf, wholeRunRule } from './netFaults.js';

export const FIRED_DIR = 'chaos-fired';

export interface RankChaosSpec {
  seed: number;
  faults: Fault[];
}

export interface FiredMarker {
  fault: number;
  kind: string;
  rank: number;
  step: number;
  incarnation: number;
  /** Date.now() when it fired (wall clock: shared with the harness on the same host) */
  wallMs: number;
}

/**
 * Writes a marker or an effect count whole or not at all: a rank SIGKILLed mid-write (a partition
 * or a hang is answered with SIGKILL) must not leave a truncated file whose count then reads as
 * lost. The temporary name starts with a dot, so isFiredMarkerName and isEffectsName refuse it.
 */
function writeWhole(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function firedMarkerPath(outputDir: string, fault: number, rank: number): string {
  return join(outputDir, FIRED_DIR, `fault-${fault}-rank-${rank}.json`);
}

/** Whether a name in FIRED_DIR is a fired marker (firedMarkerPath), not a count or a write in progress. */
export const isFiredMarkerName = (name: string): boolean => /^fault-\d+-rank-\d+\.json$/.test(name);

/** What one rank's incarnation counted of a fault's effects. */
export interface EffectCount {
  fault: number;
  kind: string;
  rank: number;
  incarnation: number;
  count: number;
}

export function effectsPath(outputDir: string, fault: number, rank: number, incarnation: number): string {
  return join(outputDir, FIRED_DIR, `effects-${fault}-rank-${rank}-inc-${incarnation}.json`);
}

/** Whether a name in FIRED_DIR is an effect count (effectsPath). */
export const isEffectsName = (name: string): boolean => /^effects-\d+-rank-\d+-inc-\d+\.json$/.test(name);

/** How often the effect counts are written while the rank runs (a killed rank loses at most this much). */
const EFFECTS_FLUSH_MS = 200;

export class RankChaos implements RankFaults {
  readonly active = true;
  private proxy: FaultProxy | null = null;
  private readonly mine: Fault[];
  private readonly t0 = Date.now();
  private outputDir = '.';
  private configured = false;
  private started = false;
  private slowUntil = 0;
  private slowDelayMs = 0;
  private scaleFrom = -1;
  private scaleUntilMs = 0;
  private scale = 1;
  private nanStep = -1;
  private nanValue = NaN;
  private collectiveArmed = false;
  private writeArmed = false;
  /** effects counted per fault, and the network rules each fault added (their hits count too) */
  private readonly effects = new Map<number, number>();
  private readonly rulesOf = new Map<number, NetRule[]>();
  private readonly written = new Map<number, number>();
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly spec: RankChaosSpec,
    private readonly rank: number,
    hostIndex: number,
    private readonly incarnation: number,
    private readonly log: Logger,
  ) {
    this.mine = spec.faults.filter((f) => (f.target.rank !== undefined ? f.target.rank === rank : f.target.host === hostIndex));
  }

  /** Wraps the rank's control transport; whole-run net faults start now. */
  wrap(t: Transport): Transport {
    this.proxy = new FaultProxy(t, { seed: (this.spec.seed * 1000003 + this.rank * 7919 + this.incarnation) >>> 0 });
    for (const f of this.mine) {
      const k = netKindOf(f);
      if (k && isUntriggered(f) && f.side === 'rank') this.addNetRule(f, wholeRunRule(f, k, null));
    }
    return this.proxy;
  }

  private addNetRule(f: Fault, r: NetRule): void {
    // the first frame hit is recorded at once: the rank may be killed before the next timed flush
    r.onFirstHit = () => this.flushEffects();
    this.proxy?.addRule(r);
    this.rulesOf.set(f.index, [...(this.rulesOf.get(f.index) ?? []), r]);
  }

  private bump(f: Fault, n = 1): void {
    this.effects.set(f.index, (this.effects.get(f.index) ?? 0) + n);
  }

  /** Writes the effect counts that changed since the last write (synchronously: a death may follow). */
  private flushEffects(): void {
    // before the job arrives (configure()) there is no output_dir to write into: the counts wait
    if (!this.configured) return;
    for (const f of this.mine) {
      const hits = (this.rulesOf.get(f.index) ?? []).reduce((a, r) => a + (r.hits ?? 0), 0);
      const count = (this.effects.get(f.index) ?? 0) + hits;
      if (count === 0 || this.written.get(f.index) === count) continue;
      const e: EffectCount = { fault: f.index, kind: f.kind, rank: this.rank, incarnation: this.incarnation, count };
      try {
        mkdirSync(join(this.outputDir, FIRED_DIR), { recursive: true });
        writeWhole(effectsPath(this.outputDir, f.index, this.rank, this.incarnation), JSON.stringify(e) + '\n');
        this.written.set(f.index, count);
      } catch {
        /* counted again at the next flush */
      }
    }
  }

  /**
   * The job arrives with the welcome, after wrap(). Net faults triggered by time start from a
   * timer, so they reach workloads that do not call beforeStep() too.
   */
  configure(job: JobSpec): void {
    this.outputDir = job.config.output_dir;
    this.configured = true;
    if (this.mine.length) {
      this.flushTimer = setInterval(() => this.flushEffects(), EFFECTS_FLUSH_MS);
      this.flushTimer.unref();
    }
    for (const f of this.mine) {
      const k = netKindOf(f);
      if (!k || f.side !== 'rank' || f.trigger.atTimeS === undefined) continue;
      const timer = setTimeout(() => {
        if (this.closed || this.firedBefore(f) || !this.proxy) return;
        this.markFired(f, -1);
        this.addNetRule(f, firedRule(f, k, null, this.proxy.elapsedMs));
      }, Math.max(0, f.trigger.atTimeS * 1000 - (Date.now() - this.t0)));
      timer.unref();
      this.timers.push(timer);
    }
  }

  private closed = false;
  private timers: NodeJS.Timeout[] = [];
  private slowFault: Fault | null = null;
  private nanFault: Fault | null = null;
  private scaleFault: Fault | null = null;
  private collectiveFault: Fault | null = null;
  private writeFault: Fault | null = null;
  private readonly scaledSteps = new Set<number>();

  private firedBefore(f: Fault): boolean {
    return existsSync(firedMarkerPath(this.outputDir, f.index, this.rank));
  }

  private markFired(f: Fault, step: number): void {
    const m: FiredMarker = { fault: f.index, kind: f.kind, rank: this.rank, step, incarnation: this.incarnation, wallMs: Date.now() };
    try {
      mkdirSync(join(this.outputDir, FIRED_DIR), { recursive: true });
      writeWhole(firedMarkerPath(this.outputDir, f.index, this.rank), JSON.stringify(m) + '\n');
    } catch (e) {
      this.log.warn('chaos: cannot record a fired fault', { error: (e as Error).message });
    }
    this.log.warn(`chaos: injecting ${f.kind} (fault ${f.index}) ${step > 0 ? `before step ${step}` : `at ${((Date.now() - this.t0) / 1000).toFixed(1)} s`}`);
  }

  private due(f: Fault, step: number): boolean {
    const t = f.trigger;
    if (t.atStep !== undefined) return step >= t.atStep;
    if (t.atTimeS !== undefined) return Date.now() - this.t0 >= t.atTimeS * 1000;
    if (t.probability !== undefined) return keyedUniform(this.spec.seed, f.index, this.rank, step) < t.probability;
    return false;
  }

  async beforeStep(step: number, signal: AbortSignal): Promise<void> {
    const first = !this.started;
    this.started = true;
    for (const f of this.mine) {
      if (f.kind === 'restart_storm') {
        if (first) {
          this.markFired(f, step);
          this.bump(f);
          this.flushEffects();
          throw new ChaosFault(`chaos: restart storm: rank ${this.rank} dies at every start (fault ${f.index})`, 'ERR_CHAOS_STORM');
        }
        continue;
      }
      const k = netKindOf(f);
      if (k) {
        // time triggers run from a timer (configure())
        if (isUntriggered(f) || f.trigger.atTimeS !== undefined || f.side !== 'rank' || this.firedBefore(f) || !this.due(f, step)) continue;
        this.markFired(f, step);
        if (this.proxy) this.addNetRule(f, firedRule(f, k, null, this.proxy.elapsedMs));
        continue;
      }
      if (this.firedBefore(f) || !this.due(f, step)) continue;
      this.markFired(f, step);
      switch (f.kind) {
        case 'hang':
          // the loop stops here; heartbeats (another timer) keep going: only the step stalls
          this.bump(f);
          this.flushEffects();
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          throw signal.reason;
        case 'slow':
          this.slowUntil = Date.now() + f.durationS * 1000;
          this.slowDelayMs = f.delayMs;
          this.slowFault = f;
          break;
        case 'nan_gradients':
          this.nanStep = step;
          this.nanValue = f.value === 'inf' ? Infinity : NaN;
          this.nanFault = f;
          break;
        case 'vanishing_gradients':
        case 'exploding_gradients':
          this.scaleFrom = step;
          this.scaleUntilMs = Date.now() + f.durationS * 1000;
          this.scale = f.scale;
          this.scaleFault = f;
          break;
        case 'collective_crash':
          this.collectiveFault = f;
          this.collectiveArmed = true;
          break;
        case 'checkpoint_write_fail':
          this.writeFault = f;
          this.writeArmed = true;
          break;
        default:
          break;
      }
    }
    if (Date.now() < this.slowUntil && this.slowDelayMs > 0) {
      if (this.slowFault) this.bump(this.slowFault);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.slowDelayMs);
        signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  lossScale(step: number): number {
    if (this.scaleFrom < 0 || step < this.scaleFrom) return 1;
    // the trigger step always; later steps while the duration lasts
    const scaled = step === this.scaleFrom || Date.now() < this.scaleUntilMs;
    if (scaled && this.scaleFault && this.scaledSteps.size < 1e6 && !this.scaledSteps.has(step)) {
      this.scaledSteps.add(step);
      this.bump(this.scaleFault);
    }
    return scaled ? this.scale : 1;
  }

  corruptGradients(grads: Float32Array, step: number): void {
    if (step !== this.nanStep || grads.length === 0) return;
    // a handful of positions spread over the buffer, the same on every run
    for (let i = 0; i < 4; i++) grads[Math.floor((i * grads.length) / 4)] = this.nanValue;
    if (this.nanFault) this.bump(this.nanFault, 4);
  }

  async inCollective(name: string, step: number): Promise<void> {
    if (!this.collectiveArmed) return;
    this.log.warn(`chaos: dying inside collective ${name} at step ${step}`);
    if (this.collectiveFault) this.bump(this.collectiveFault);
    this.flushEffects();
    // no cleanup, no goodbye: exactly what a crash in the middle of a collective looks like
    process.kill(process.pid, 'SIGKILL');
    await new Promise(() => undefined);
  }

  async checkpointWrite(step: number, tmpDir: string): Promise<void> {
    if (!this.writeArmed) return;
    this.writeArmed = false;
    if (this.writeFault) this.bump(this.writeFault);
    this.flushEffects();
    // leave a torn temp dir behind: every file cut to half its size
    try {
      for (const n of readdirSync(tmpDir)) {
        const p = join(tmpDir, n);
        const st = statSync(p);
        if (st.isFile()) truncateSync(p, Math.floor(st.size / 2));
      }
    } catch {
      /* the throw below is the fault that matters */
    }
    throw new ChaosFault(`chaos: the checkpoint writer failed mid-write at step ${step} (torn ${tmpDir})`, 'ERR_CHAOS_CHECKPOINT_WRITE');
  }

  /** Lets delayed frames out (bounded), then stops the proxy. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushEffects();
    for (const t of this.timers) clearTimeout(t);
    await this.proxy?.drain(1000);
    await this.proxy?.close();
    const f = this.proxy?.faults;
    if (f && f.dropped + f.delayed + f.duplicated + f.reordered > 0) this.log.warn('chaos: fault proxy on this rank', { ...f });
  }
}

/** The rank's chaos from its environment, or null when no plan is loaded. */
export function rankChaosFromEnv(env: NodeJS.ProcessEnv, rank: number, incarnation: number, log: Logger): RankChaos | null {
  const raw = env[CHAOS_ENV];
  if (!raw) return null;
  let spec: RankChaosSpec;
  try {
    spec = JSON.parse(raw) as RankChaosSpec;
  } catch (e) {
    log.error(`${CHAOS_ENV} is not valid JSON: fault injection is off`, { error: (e as Error).message });
    return null;
  }
  return new RankChaos(spec, rank, Number(env.GROUP_RANK ?? 0), incarnation, log);
}
