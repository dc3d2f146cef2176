/**
 * The `ssh` launcher: starts `ulysses-actors agent --join ... --job-key - --exit-on-stdin-close`
 * on each host with the OpenSSH client (BatchMode: it never prompts). The job key goes over the
 * session's stdin, never on a command line; stdin then stays open as the agent's lifeline, so
 * when `up` dies or the connection drops, the remote agent stops its ranks and exits.
 * Stopping a remote agent: close stdin (the agent's own shutdown), then SIGTERM/SIGKILL the
 * local ssh client; never waits forever.
 */
import { exitedWithin, killGroupOnExit, terminateGroup } from '../processGroup.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { ClusterSettings, SshOptions } from '../../config/ClusterSettings.js';
import type { Logger } from '../../util/Logger.js';
import { passThrough, type Launcher, type OutputSink } from './Launcher.js';
import type { ChildHandle, ExitInfo } from '../Supervisor.js';
import { agentArgs, shellLine, type AgentStart } from './agentArgs.js';

export interface SshSettings extends SshOptions {
  /** how the remote host runs this program (a shell fragment, e.g. `ulysses-actors` or `node /opt/ua/dist/src/cli/entry.js`) */
  agentCommand: string;
  /** the ssh client binary */
  ssh?: string;
  /** time the remote agent gets to stop its ranks after stdin closes, before signals (ms) */
  graceMs?: number;
}

/** The job's ssh options; the remote agent gets the ranks' shutdown grace plus time to report. */
export function sshSettingsOf(c: ClusterSettings): SshSettings {
  return { ...c.ssh, agentCommand: c.agentCommand, graceMs: c.shutdownGraceMs + 5000 };
}

/** The ssh client's arguments for one host (everything but the key, which goes over stdin). */
export function sshCommand(s: SshSettings, a: AgentStart): { command: string; args: string[]; remote: string } {
  const remote = `exec ${s.agentCommand} ${shellLine([...agentArgs(a, '-'), '--exit-on-stdin-close'])}`;
  const args = [
    '-T',
    '-o', 'BatchMode=yes',
    '-o', `StrictHostKeyChecking=${s.strictHostKeyChecking}`,
    '-o', `ConnectTimeout=${s.connectTimeoutS}`,
    // a dead network path ends the session, so the remote agent's lifeline closes
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    ...(s.port !== null ? ['-p', String(s.port)] : []),
    ...(s.identityFile ? ['-i', s.identityFile, '-o', 'IdentitiesOnly=yes'] : []),
    ...s.options.flatMap((o) => ['-o', o]),
    ...(s.user && !a.host.includes('@') ? ['-l', s.user] : []),
    '--',
    a.host,
    remote,
  ];
  return { command: s.ssh ?? 'ssh', args, remote };
}

/** A remote agent as the coordinator sees it: the local ssh client process. */
export class SshAgentProcess implements ChildHandle {
  readonly proc: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  private tail = '';
  private exitInfo: ExitInfo | null = null;
  private stopping: Promise<void> | null = null;
  private stopReason: string | null = null;

  constructor(
    readonly host: string,
    command: string,
    args: string[],
    keyText: string,
    private readonly graceMs: number,
    private readonly logger: Logger,
    output: OutputSink = passThrough,
  ) {
    // own process group: a Ctrl-C on the terminal reaches `up`, which then stops the job in order
    this.proc = spawn(command, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdin!.on('error', () => {
      /* the session ended; the exit report says why */
    });
    this.proc.stdin!.write(keyText.endsWith('\n') ? keyText : keyText + '\n');
    const keep = (b: Buffer) => {
      this.tail = (this.tail + b.toString('utf8')).slice(-8192);
    };
    this.proc.stderr!.on('data', (b: Buffer) => {
      keep(b);
      output('stderr', b);
    });
    this.proc.stdout!.on('data', (b: Buffer) => output('stdout', b));
    this.exited = new Promise((resolve) => {
      this.proc.once('error', (e) => {
        this.exitInfo ??= { normal: false, reason: `could not start ${command}: ${e.message}`, code: null, signal: null };
        resolve(this.exitInfo);
      });
      this.proc.once('exit', (code, signal) => {
        const last = this.tail.trim().split('\n').filter(Boolean).pop();
        const why = this.stopReason ? `stopped: ${this.stopReason}` : signal ? `ssh killed by ${signal}` : `ssh exited with code ${code}`;
        this.exitInfo ??= {
          normal: code === 0 && this.stopReason === null,
          reason: code !== 0 && last && !this.stopReason ? `${why}: ${last}` : why,
          code,
          signal,
          detail: { stderrTail: this.tail },
        };
        resolve(this.exitInfo);
      });
    });
    killGroupOnExit(this.proc.pid, this.exited, () => this.exitInfo !== null);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  private waitExit(ms: number): Promise<boolean> {
    return this.exitInfo ? Promise.resolve(true) : exitedWithin(this.exited, ms);
  }

  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      if (this.exitInfo) return;
      this.stopReason = reason;
      // closing stdin is the remote agent's signal to stop its ranks and exit
      this.proc.stdin!.end();
      if (await this.waitExit(this.graceMs)) return;
      if (await terminateGroup(this.proc.pid, this.exited, () => this.exitInfo !== null, 3000, 3000)) return;
      this.logger.error('an ssh client could not be killed', { host: this.host, pid: this.proc.pid });
    })();
    return this.stopping;
  }
}

export class SshLauncher implements Launcher {
  readonly children: SshAgentProcess[] = [];

  constructor(
    private readonly settings: SshSettings,
    private readonly logger: Logger,
    private readonly output: OutputSink = passThrough,
  ) {}

  async startAgent(a: AgentStart): Promise<ChildHandle> {
    const keyText = await readFile(a.keyFile, 'utf8');
    const { command, args } = sshCommand(this.settings, a);
    this.logger.info('starting a node agent over ssh', { host: a.host, command: [command, ...args].join(' ') });
    const child = new SshAgentProcess(a.host, command, args, keyText, this.settings.graceMs ?? 15_000, this.logger, this.output);
    this.children.push(child);
    return child;
  }
}
