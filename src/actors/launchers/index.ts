/**
 * Launchers start the node agent of each host: `local` (child processes), `ssh` (OpenSSH) or
 * `external` (printed for Slurm/Kubernetes). chooseLaunchers() applies `up`'s rule: an explicit
 * cluster.launcher applies to every host; left at its default, loopback addresses and this
 * machine's name run locally and every other host over ssh. It also refuses a loopback-only
 * coordinator with agents on other machines. Pure apart from reading os.hostname().
 */
import { hostname } from 'node:os';
import type { Logger } from '../../util/Logger.js';
import type { ChildHandle } from '../Supervisor.js';
import type { Launcher } from '../Coordinator.js';
import type { AgentStart } from './agentArgs.js';
import { ExternalLauncher } from './ExternalLauncher.js';
import { LocalLauncher } from './LocalLauncher.js';
import { SshLauncher, sshSettingsFrom } from './SshLauncher.js';

export { LocalLauncher } from './LocalLauncher.js';
export { SshLauncher, SshAgentProcess, sshCommand, sshSettingsFrom, type SshSettings } from './SshLauncher.js';
export { ExternalLauncher } from './ExternalLauncher.js';
export { agentArgs, shellQuote, shellLine, type AgentStart } from './agentArgs.js';

export type LauncherKind = 'local' | 'ssh' | 'external';

/** A host name without `user@`. */
export const bareHost = (h: string) => h.slice(h.lastIndexOf('@') + 1);

export function isLoopbackHost(h: string): boolean {
  const b = bareHost(h).toLowerCase();
  return b === 'localhost' || b === 'ip6-localhost' || b === '::1' || /^127\.\d+\.\d+\.\d+$/.test(b);
}

export function isThisMachine(h: string): boolean {
  return isLoopbackHost(h) || bareHost(h) === hostname();
}

/** Which launcher each host gets. */
export function launcherKinds(hosts: string[], configured: LauncherKind, explicit: boolean): LauncherKind[] {
  if (explicit) return hosts.map(() => configured);
  if (configured !== 'local') return hosts.map(() => configured);
  return hosts.map((h) => (isThisMachine(h) ? 'local' : 'ssh'));
}

/** Why this plan cannot work (agents that could not reach a loopback-only coordinator), or null. */
export function bindProblem(hosts: string[], kinds: LauncherKind[], bindHost: string): string | null {
  if (!isLoopbackHost(bindHost)) return null;
  const remote = hosts.filter((h, i) => kinds[i] !== 'local' && !isThisMachine(h));
  if (remote.length === 0) return null;
  return `the coordinator binds ${bindHost} (loopback) but ${remote.join(', ')} ${remote.length === 1 ? 'is another machine' : 'are other machines'}`;
}

/** Dispatches each host to its launcher. */
export class PerHostLauncher implements Launcher {
  constructor(
    private readonly kinds: LauncherKind[],
    readonly launchers: Partial<Record<LauncherKind, Launcher>>,
  ) {}

  startAgent(a: AgentStart): Promise<ChildHandle | null> {
    return this.launchers[this.kinds[a.hostIndex]!]!.startAgent(a);
  }

  /** pids of the local processes started for agents (local agents and ssh clients) */
  get localPids(): number[] {
    const local = (this.launchers.local as LocalLauncher | undefined)?.pids ?? [];
    const ssh = ((this.launchers.ssh as SshLauncher | undefined)?.children ?? []).map((c) => c.pid).filter((p): p is number => p !== undefined);
    return [...local, ...ssh];
  }
}

export function createLaunchers(o: {
  kinds: LauncherKind[];
  config: Record<string, unknown>;
  cliEntry: string;
  logger: Logger;
  write: (line: string) => void;
}): PerHostLauncher {
  const used = new Set(o.kinds);
  const launchers: Partial<Record<LauncherKind, Launcher>> = {};
  if (used.has('local')) launchers.local = new LocalLauncher(o.cliEntry, o.logger.child('local'));
  if (used.has('ssh')) launchers.ssh = new SshLauncher(sshSettingsFrom(o.config), o.logger.child('ssh'));
  if (used.has('external')) {
    const c = (o.config.cluster ?? {}) as Record<string, unknown>;
    launchers.external = new ExternalLauncher(typeof c.agent_command === 'string' ? c.agent_command : 'ulysses-actors', o.write);
  }
  return new PerHostLauncher(o.kinds, launchers);
}
