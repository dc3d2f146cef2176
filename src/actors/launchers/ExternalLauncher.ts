/**
 * The `external` launcher: starts nothing. It prints, for each host, the exact agent command that
 * Slurm (srun), Kubernetes (a pod per host) or a person must run there, and the coordinator waits
 * for the agents to join (cluster.rendezvous_timeout_s). The printed line names the key FILE,
 * never its content; `--job-key -` with the file on stdin works as well.
 */
import type { Launcher } from './Launcher.js';
import { agentArgs, shellLine, shellQuote, type AgentStart } from './agentArgs.js';

export class ExternalLauncher implements Launcher {
  private printedHeader = false;

  constructor(
    /** how the hosts run this program (cluster.agent_command), printed verbatim */
    private readonly agentCommand: string,
    private readonly write: (line: string) => void,
  ) {}

  /** The command line for one host. */
  commandFor(a: AgentStart): string {
    return `${this.agentCommand} ${shellLine(agentArgs(a, a.keyFile))}`;
  }

  async startAgent(a: AgentStart): Promise<null> {
    if (!this.printedHeader) {
      this.printedHeader = true;
      this.write('external launcher: start one node agent per host (srun, a Kubernetes pod, or by hand):');
    }
    this.write(`  host ${a.hostIndex} (${a.host}, ${a.slots} slot${a.slots === 1 ? '' : 's'}): ${this.commandFor(a)}`);
    if (a.hostIndex === 0) {
      this.write(`  the key file must reach every host over a private channel (shared home, a secret), or pipe it: ... --job-key - < ${shellQuote(a.keyFile)}`);
    }
    return null;
  }
}
