/**
 * The guarantees of a plan the gradient policy absorbs (`expect: absorb`: gradient faults under
 * the train workload), which the fault-free weights are not the target of:
 *   completed    the job ended with success (a policy rollback and restart is allowed);
 *   policy       at the step a NaN/Inf fault fired the update was skipped (nonfinite > 0, lr 0 in
 *                metrics.jsonl); at a vanishing (exploding) fault's step the policy was in
 *                vanishing-intervention (explode-clip);
 *   finite       every weight of the final checkpoint is finite;
 *   replicas     every rank ends with the same final hash.
 * Reads metrics.jsonl and the final checkpoint's weights (through the engine's safetensors
 * reader); never writes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../engine/safetensors.js';
import type { FaultPlan } from '../FaultPlan.js';
import type { Guarantee } from './guarantees.js';
import type { RunOnce } from './runOnce.js';

/** The metrics.jsonl fields these guarantees read. */
interface MetricsFields {
  step: number;
  loss: number;
  lr: number;
  grad_mean: number;
  nonfinite: number;
  policy_state: string;
}

function readMetrics(outputDir: string): MetricsFields[] {
  try {
    return readFileSync(join(outputDir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as MetricsFields);
  } catch {
    return [];
  }
}

/** Non-finite values among a safetensors file's tensors, or null if it cannot be read. */
async function nonfiniteWeights(path: string): Promise<{ values: number; nonfinite: number } | null> {
  try {
    const { tensors } = await readSafetensors(path);
    let values = 0;
    let nonfinite = 0;
    for (const t of tensors.values()) {
      values += t.data.length;
      for (const v of t.data) if (!Number.isFinite(v)) nonfinite++;
    }
    return { values, nonfinite };
  } catch {
    return null;
  }
}

export async function absorbGuarantees(plan: FaultPlan, run: RunOnce, world: number): Promise<Guarantee[]> {
  const g: Guarantee[] = [];
  const r = run.result;
  g.push({ name: 'completed (or recovered) by itself', ok: r.ok, detail: r.ok ? `succeeded at step ${r.lastStep} after ${r.restarts} restart(s)` : String(r.reason).slice(0, 300) });
  const rows = readMetrics(run.outputDir);
  for (const f of plan.faults) {
    const inj = run.injected.get(f.index);
    if (!inj) continue; // reported by 'every fault was injected'
    const at = rows.filter((row) => row.step === inj.step);
    const fmtRow = (row: MetricsFields | undefined) => (row ? `nonfinite ${row.nonfinite}, lr ${row.lr}, grad_mean ${Number(row.grad_mean).toExponential(3)}, policy_state ${row.policy_state}` : 'no metrics row');
    if (f.kind === 'nan_gradients') {
      const skipped = at.find((row) => row.nonfinite > 0 && row.lr === 0);
      const later = rows.filter((row) => row.step > inj.step);
      const laterOk = later.length > 0 && later.every((row) => Number.isFinite(row.loss) && row.nonfinite === 0);
      g.push({ name: `non-finite step ${inj.step} skipped`, ok: !!skipped && laterOk, detail: `step ${inj.step}: ${fmtRow(skipped ?? at[0])}; ${later.length} later step(s) ${laterOk ? 'finite' : 'NOT all finite'}` });
    } else {
      const want = f.kind === 'vanishing_gradients' ? /vanishing/ : /explode/;
      const entered = at.find((row) => want.test(String(row.policy_state)));
      g.push({ name: `${f.kind === 'vanishing_gradients' ? 'vanishing-intervention' : 'explode-clip'} entered at scaled step ${inj.step}`, ok: !!entered, detail: `loss scale ${f.scale}; step ${inj.step}: ${fmtRow(entered ?? at[0])}` });
    }
  }
  const last = rows.length ? Math.max(...rows.map((row) => row.step)) : 0;
  const w = await nonfiniteWeights(join(run.outputDir, `checkpoint-${last}`, 'model.safetensors'));
  g.push({ name: 'final weights finite', ok: !!w && w.values > 0 && w.nonfinite === 0, detail: w ? `checkpoint-${last}: ${w.nonfinite} non-finite of ${w.values} values` : `checkpoint-${last}/model.safetensors unreadable` });
  const hashes = Array.from({ length: world }, (_, i) => r.finalHashes[i]);
  const same = hashes.every((h) => typeof h === 'string' && h === hashes[0]);
  g.push({ name: 'replicas end with identical weights', ok: same, detail: hashes.map((h, i) => `rank${i} ${(h ?? 'none').slice(0, 12)}`).join(', ') });
  return g;
}
