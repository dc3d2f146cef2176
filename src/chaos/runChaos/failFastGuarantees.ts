/**
 * The guarantees of a plan whose faults no restart can cure (`expect: fail_fast`: a malformed
 * dataset row, a full disk):
 *   failed at once   the job failed as deterministic, with no restart at all;
 *   one message      one job failure, whose reason names the problem (the file and line of the
 *                    row; the missing space);
 *   checkpoint kept  (disk_full) the newest committed checkpoint still verifies, and no torn
 *                    temporary directory is left beside it.
 * Reads the job's events and output_dir (verifying checksums); never writes.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { eventsOf } from '../../actors/events/jobEvents.js';
import { verifyCheckpoint } from '../../train/checkpoint.js';
import type { FaultPlan } from '../FaultPlan.js';
import type { Guarantee } from './guarantees.js';
import { newestCheckpointName } from './outputFiles.js';
import type { RunOnce } from './runOnce.js';

export async function failFastGuarantees(plan: FaultPlan, run: RunOnce): Promise<Guarantee[]> {
  const g: Guarantee[] = [];
  const r = run.result;
  const restarted = eventsOf(run.events, 'job.restarted').length;
  g.push({
    name: 'failed at once, without a restart',
    ok: !r.ok && r.failure === 'deterministic' && r.restarts === 0 && restarted === 0,
    detail: `ok=${r.ok} failure=${r.failure ?? 'none'} restarts=${r.restarts}`,
  });
  const failed = eventsOf(run.events, 'job.failed');
  const reason = String(r.reason ?? '');
  for (const f of plan.faults) {
    const named =
      f.kind === 'malformed_row'
        ? !!run.malformed && reason.includes(run.malformed.file) && reason.includes(`line ${run.malformed.line}`)
        : /ENOSPC|no space/i.test(reason);
    g.push({ name: `one message naming the ${f.kind === 'malformed_row' ? 'file and line' : 'full disk'}`, ok: failed.length === 1 && named, detail: `${failed.length} job failure(s): ${reason.slice(0, 300)}` });
    if (f.kind !== 'disk_full') continue;
    const newest = newestCheckpointName(run.outputDir);
    const why = newest ? await verifyCheckpoint(join(run.outputDir, newest)) : 'no checkpoint was committed before the disk filled up';
    let torn: string[] = [];
    try {
      torn = readdirSync(run.outputDir).filter((n) => /^\.checkpoint-\d+\.tmp-/.test(n));
    } catch {
      /* no directory: reported by the check above */
    }
    g.push({ name: 'the newest checkpoint is intact, nothing torn beside it', ok: why === undefined && torn.length === 0, detail: `${newest ?? 'none'}: ${why ?? 'verifies'}${torn.length ? `; torn: ${torn.join(', ')}` : ''}` });
  }
  return g;
}
