/** The workloads a rank can run, by name (ULYSSES_WORKLOAD). Loaded lazily: the engine is heavy. */
import type { Workload } from './Workload.js';

export const workloads: Record<string, Workload> = {
  synthetic: async (ctx) => (await import('./syntheticWorkload.js')).syntheticWorkload(ctx),
  train: async (ctx) => (await import('../../train/trainWorkload.js')).trainWorkload(ctx),
};
