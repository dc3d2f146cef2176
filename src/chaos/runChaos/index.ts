/** The chaos harness (see runChaos.ts). Re-exports only. */
export { runChaos, type ChaosRunOptions, type ChaosReport, type FaultOutcome, type Guarantee } from './runChaos.js';
export { formatChaosReport } from './formatChaosReport.js';
export { chaosJob, defaultChaosJob, deepMerge } from './chaosJob.js';
