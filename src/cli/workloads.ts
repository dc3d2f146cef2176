/**
 * The workloads a rank can run, by name (`up --workload`, a chaos plan's `workload:`, the rank's
 * ULYSSES_WORKLOAD): the composition root's registry. Loaded lazily: the engine is heavy and the
 * synthetic workload never needs it.
 */
import type { Workload } from '../train/Workload.js';

export const workloads: Record<string, Workload> = {
  synthetic: async (ctx) => (await import('../actors/rank/syntheticWorkload.js')).syntheticWorkload(ctx),
  train: async (ctx) => (await import('../train/trainWorkload.js')).trainWorkload(ctx),
};

/** Loads every workload's code without running any (a standby rank does this ahead of need). */
export async function preloadWorkloads(): Promise<void> {
  await Promise.all([import('../actors/rank/syntheticWorkload.js'), import('../train/trainWorkload.js')]);
}
