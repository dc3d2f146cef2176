/**
 * Starts node agents as child processes of `up` on this machine (the `local` launcher). Each agent
 * is a supervised ProcessChild in its own process group, so stopping it takes its ranks along.
 */
import type { Logger } from '../util/Logger.js';
import type { Launcher } from './Coordinator.js';
import { ProcessChild } from './ProcessChild.js';

export class LocalLauncher implements Launcher {
  readonly children: ProcessChild[] = [];

  constructor(
    /** path of the compiled CLI entry (src/cli/entryPath.ts) */
    private readonly cliEntry: string,
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  async startAgent(a: { hostIndex: number; host: string; slots: number; joinUrl: string; keyFile: string }) {
    const child = new ProcessChild({
      command: process.execPath,
      args: [this.cliEntry, 'agent', '--join', a.joinUrl, '--job-key', a.keyFile, '--host-index', String(a.hostIndex), '--slots', String(a.slots)],
      env: this.env,
      graceMs: 8000,
      onOutput: (stream, chunk) => (stream === 'stderr' ? process.stderr : process.stdout).write(chunk),
      onUnkillable: (pid) => this.logger.error('a node agent could not be killed', { pid }),
    });
    this.children.push(child);
    return child;
  }
}
