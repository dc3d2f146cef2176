/**
 * Launchers start the node agent of each host: `local` (child processes), `ssh` (OpenSSH) or
 * `external` (printed for Slurm/Kubernetes); launcherKinds() picks one per host and
 * PerHostLauncher dispatches to them. Re-exports only.
 */
export type { Launcher } from './Launcher.js';
export { LocalLauncher } from './LocalLauncher.js';
export { SshLauncher, SshAgentProcess, sshCommand, sshSettingsOf, type SshSettings } from './SshLauncher.js';
export { ExternalLauncher } from './ExternalLauncher.js';
export { agentArgs, shellQuote, shellLine, type AgentStart } from './agentArgs.js';
export { bareHost, bindProblem, isLoopbackHost, isThisMachine, launcherKinds, type LauncherKind } from './launcherKinds.js';
export { PerHostLauncher, createLaunchers } from './PerHostLauncher.js';
