/**
 * The launcher `up` hands the coordinator: each host's agent is started by the launcher chosen
 * for it (launcherKinds.ts), built from the job's cluster settings. Owns the launchers it makes.
 */
import type { ClusterSettings } from '../../config/ClusterSettings.js';
import type { Logger } from '../../util/Logger.js';
import type { ChildHandle } from '../Supervisor.js';
import type { AgentStart } from './agentArgs.js';
import { ExternalLauncher } from './ExternalLauncher.js';
import type { Launcher, OutputSink } from './Launcher.js';
import type { LauncherKind } from './launcherKinds.js';
import { LocalLauncher } from './LocalLauncher.js';
import { SshLauncher, sshSettingsOf } from './SshLauncher.js';

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
  cluster: ClusterSettings;
  cliEntry: string;
  logger: Logger;
  write: (line: string) => void;
  /** agents' output (up's progress display); default: passed through */
  output?: OutputSink;
}): PerHostLauncher {
  const used = new Set(o.kinds);
  const launchers: Partial<Record<LauncherKind, Launcher>> = {};
  if (used.has('local')) launchers.local = new LocalLauncher(o.cliEntry, o.logger.child('local'), process.env, o.output);
  if (used.has('ssh')) launchers.ssh = new SshLauncher(sshSettingsOf(o.cluster), o.logger.child('ssh'), o.output);
  if (used.has('external')) launchers.external = new ExternalLauncher(o.cluster.agentCommand, o.write);
  return new PerHostLauncher(o.kinds, launchers);
}
