/**
 * A synthetic workload for testing the control plane and fault handling without the math engine:
 * every rank rendezvouses through the coordinator's store, then runs `max_steps` steps of a
 * deterministic hash chain (the "weights"), sleeping `synthetic.step_ms` per step (the knobs:
 * config/SyntheticSettings.ts). A test switch makes the last rank report a different policy
 * decision from `synthetic.diverge_at_step` on. Rank 0 writes
 * an atomic checkpoint every `save_steps`; a restarted group (or a job with resume_from_checkpoint,
 * which `up` sets to resume an interrupted run of the same job) resumes from the newest valid one,
 * so a run with failures ends with the same final hash as a run without.
 * It calls the fault plan's ChaosHooks like the train workload does: before every step, on a
 * stand-in gradient (a non-finite one fails the step with ERR_NONFINITE, so the supervisor path
 * is tested), inside a store barrier every `synthetic.barrier_steps` steps (a collective on the
 * control plane), and between writing a checkpoint's temp dir and renaming it.
 * It is a test workload: it trains nothing.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SYNTHETIC_DEFAULTS } from '../../config/SyntheticSettings.js';
import { noChaos } from '../../train/ChaosHooks.js';
import type { Workload } from '../../train/Workload.js';

interface SyntheticState {
  step: number;
  hash: string;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** The newest valid checkpoint in `dir` at or before step `upTo`. */
async function latestCheckpoint(dir: string, upTo = Infinity): Promise<SyntheticState | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  const steps = names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1]))
    .filter((s) => s <= upTo)
    .sort((a, b) => b - a);
  for (const s of steps) {
    try {
      const raw = await readFile(join(dir, `checkpoint-${s}`, 'state.json'), 'utf8');
      const st = JSON.parse(raw) as SyntheticState & { checksum: string };
      if (st.checksum === sha(`${st.step}:${st.hash}`)) return { step: st.step, hash: st.hash };
    } catch {
      /* torn or corrupted: try the previous one */
    }
  }
  return null;
}

export const syntheticWorkload: Workload = async (ctx) => {
  const { config } = ctx.job;
  const { step_ms: stepMs, fail_at_step: failAt, diverge_at_step: divergeAt, barrier_steps: barrierSteps } = ctx.job.synthetic ?? SYNTHETIC_DEFAULTS;
  const maxSteps = config.max_steps;
  const saveSteps = config.save_steps;
  const chaos = ctx.chaos ?? noChaos;
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(ctx.signal.reason);
    if (ctx.signal.aborted) fail();
    else ctx.signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => undefined);
  const outDir = config.output_dir;

  ctx.setPhase('rendezvous', false);
  await ctx.store.set(`rank${ctx.rank}`, Buffer.from(String(process.pid)));
  await ctx.store.wait(
    Array.from({ length: ctx.world }, (_, r) => `rank${r}`),
    60_000,
  );

  // a restart: the newest checkpoint; a first start with a checkpoint path: that one (or an older valid one)
  const named = ctx.incarnation === 0 && typeof config.resume_from_checkpoint === 'string' ? /^(.*)[/\\]checkpoint-(\d+)[/\\]?$/.exec(config.resume_from_checkpoint) : null;
  const resumed = named ? await latestCheckpoint(named[1]!, Number(named[2])) : ctx.incarnation > 0 || config.resume_from_checkpoint !== null ? await latestCheckpoint(outDir) : null;
  let st: SyntheticState = resumed ?? { step: 0, hash: sha('init') };
  ctx.setPhase('training', true);
  while (st.step < maxSteps) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    await chaos.beforeStep(st.step + 1, ctx.signal);
    await new Promise((r) => setTimeout(r, stepMs));
    if (chaos.active) {
      // a stand-in gradient: the hooks scale or poison it like a real one
      const g = Float32Array.of(chaos.lossScale(st.step + 1));
      chaos.corruptGradients(g, st.step + 1);
      if (!Number.isFinite(g[0]!)) throw Object.assign(new Error(`non-finite gradient at step ${st.step + 1}`), { code: 'ERR_NONFINITE' });
    }
    if (st.step + 1 === failAt && ctx.incarnation === 0 && ctx.rank === ctx.world - 1) {
      throw Object.assign(new Error(`synthetic failure at step ${failAt}`), { code: 'ERR_SYNTHETIC' });
    }
    st = { step: st.step + 1, hash: sha(`${st.hash}:${st.step + 1}`) };
    if (barrierSteps > 0 && st.step % barrierSteps === 0) {
      // every rank posts its key, then waits for all: a crash in between strands the others here
      await ctx.store.set(`barrier${st.step}/rank${ctx.rank}`, Buffer.from('1'));
      await chaos.inCollective('barrier', st.step);
      const keys = Array.from({ length: ctx.world }, (_, r) => `barrier${st.step}/rank${r}`);
      await Promise.race([ctx.store.wait(keys, 60_000), aborted]);
    }
    const diverged = divergeAt > 0 && st.step >= divergeAt && ctx.rank === ctx.world - 1;
    ctx.reportStep({ step: st.step, loss: 1 / st.step, tokens: 1, planDigest: diverged ? 'diverged' : 'synthetic', policyState: 'normal', stepMs });
    if (saveSteps > 0 && st.step % saveSteps === 0 && ctx.rank === 0) {
      ctx.setPhase('checkpointing', true);
      const final = join(outDir, `checkpoint-${st.step}`);
      const tmp = `${final}.tmp-${process.pid}`;
      await mkdir(tmp, { recursive: true });
      const checksum = sha(`${st.step}:${st.hash}`);
      await writeFile(join(tmp, 'state.json'), JSON.stringify({ ...st, checksum }));
      await chaos.checkpointWrite(st.step, tmp);
      await rm(final, { recursive: true, force: true });
      await rename(tmp, final);
      ctx.reportCheckpoint({ step: st.step, path: final, checksum });
      ctx.setPhase('training', true);
    }
  }
  return { step: st.step, finalHash: st.hash, trained: st.step - (resumed?.step ?? 0) };
};
