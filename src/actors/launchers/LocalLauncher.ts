/**
 * The `local` launcher: node agents as child processes of `up` on this machine (localhost,
 * loopback addresses such as 127.0.0.2, or any host name when asked to simulate a cluster).
 * Each agent is a supervised ProcessChild in its own process group; its SIGTERM handler stops
 * its ranks, and its stdin is a lifeline (`--exit-on-stdin-close`): if `up` dies, even by SIGKILL,
 * the agent stops its ranks at once instead of waiting out the coordinator grace, so a new `up` on
 * the same output_dir never runs beside them. Never starts anything on another machine.
 */
import type { Logger } from '../../util/Logger.js';
import { passThrough, type Launcher, type OutputSink } from './Launcher.js';
import { ProcessChild } from '../ProcessChild.js';
import { agentArgs, type AgentStart } from './agentArgs.js';

export class LocalLauncher implements Launcher {
  readonly children: ProcessChild[] = [];

  constructor(
    /** path of the compiled CLI entry (src/util/cliEntry.ts) */
    private readonly cliEntry: string,
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly output: OutputSink = passThrough,
  ) {}

  async startAgent(a: AgentStart) {
    const child = new ProcessChild({
      command: process.execPath,
      args: [this.cliEntry, ...agentArgs(a, a.keyFile), '--exit-on-stdin-close'],
      env: this.env,
      lifeline: true,
      graceMs: 8000,
      onOutput: this.output,
      onUnkillable: (pid) => this.logger.error('a node agent could not be killed', { pid }),
    });
    this.children.push(child);
    return child;
  }

  /** pids of the agents this launcher started (for tests and the final report) */
  get pids(): number[] {
    return this.children.map((c) => c.pid).filter((p): p is number => p !== undefined);
  }
}
