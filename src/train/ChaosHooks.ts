/**
 * ChaosHooks: the seam through which a workload lets the fault plan reach inside a rank,
 * declared here beside its callers (the training loop and the workloads); the chaos harness
 * (src/chaos/RankChaos.ts) implements it and the rank command hands it in. A workload calls them
 * at fixed points of every step; with no plan they are no-ops (`noChaos`). The train workload
 * and the synthetic one both call them:
 *   beforeStep(step, signal)        before optimizer step `step` (hang, slow, storms, partitions)
 *   lossScale(step)                 multiply the loss by this (vanishing/exploding gradients)
 *   corruptGradients(grads, step)   on the local gradients, before the reduction (so every replica sees the fault) (NaN/Inf)
 *   inCollective(name, step)        inside a collective, after this rank entered it
 *   checkpointWrite(step, tmpDir)   after the checkpoint files are in the temp dir, before the rename
 * Must never change anything when no fault is due, and never throw except to inject a fault.
 */

export interface ChaosHooks {
  /** false when no plan is loaded (workloads may skip work that only feeds the hooks) */
  readonly active: boolean;
  beforeStep(step: number, signal: AbortSignal): Promise<void>;
  lossScale(step: number): number;
  corruptGradients(grads: Float32Array, step: number): void;
  inCollective(name: string, step: number): Promise<void>;
  checkpointWrite(step: number, tmpDir: string): Promise<void>;
}

export const noChaos: ChaosHooks = {
  active: false,
  beforeStep: async () => undefined,
  lossScale: () => 1,
  corruptGradients: () => undefined,
  inCollective: async () => undefined,
  checkpointWrite: async () => undefined,
};
