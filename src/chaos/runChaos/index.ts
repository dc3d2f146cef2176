/** The chaos harness (see runChaos.ts). Re-exports only. */
export { ChaosUnavailable, runChaos, type ChaosRunOptions, type ChaosReport, type FaultOutcome, type Guarantee, type ReferenceRun } from './runChaos.js';
export { formatSoakReport, runSoak, type SoakReport } from './runSoak.js';
export { formatChaosReport } from './formatChaosReport.js';
export { chaosJob, defaultChaosJob, deepMerge } from './chaosJob.js';
