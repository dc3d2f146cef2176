/**
 * Policy rollbacks (REFERENCE §5): when the gradient policy gives up on non-finite gradients
 * (PolicyEscalation), every rank records the escalation in `output_dir/policy-rollbacks/`, the
 * supervisor restarts the group from the last checkpoint, and the restarted group trains with
 * the learning rate halved once per recorded escalation. The one place that rule lives; the
 * other factors of the learning rate are --adjust-lr (applied once, when the config is resolved:
 * config/loadJobConfig.ts) and the policy's multiplier while vanishing (the plan's lrMultiplier,
 * applied by the training loop). Markers are idempotent: every rank writes the same one.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PolicyEscalation } from './loop/PolicyEscalation.js';

export const ROLLBACK_DIR = 'policy-rollbacks';

/** LR scale after policy escalations: halved once per escalation recorded in output_dir. */
export async function rollbackScale(outputDir: string): Promise<{ scale: number; count: number }> {
  let names: string[] = [];
  try {
    names = await readdir(join(outputDir, ROLLBACK_DIR));
  } catch {
    /* none */
  }
  const count = names.filter((n) => n.endsWith('.json')).length;
  return { scale: 0.5 ** count, count };
}

/** Every rank escalates at the same step and writes the same marker (idempotent). */
export async function recordRollback(outputDir: string, e: PolicyEscalation, incarnation: number): Promise<void> {
  const dir = join(outputDir, ROLLBACK_DIR);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `step-${e.step}-attempt-${incarnation}.json`), JSON.stringify({ step: e.step, streak: e.streak, attempt: incarnation }) + '\n').catch(() => undefined);
}
