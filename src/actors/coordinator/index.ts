/** The coordinator and the parts it is made of. Re-exports only. */
export { Coordinator } from './Coordinator.js';
export type { CoordinatorOptions, JobResult } from './CoordinatorOptions.js';
export { StepAggregator, type MetricsRow, type StepOutcome } from './StepAggregator.js';
export { rankEnvironment, type RankEnvironmentOptions } from './rankEnvironment.js';
export { RemoteRank, RankExits, rankSlotsOf, type HostSlot, type RankSlot } from './RemoteRank.js';
export { JobKeyFile } from './JobKeyFile.js';
