/**
 * Launcher: starts the node agent of one host (locally, over ssh, or by telling an external
 * scheduler). The coordinator calls it once per host and supervises what it returns.
 */
import type { ChildHandle } from '../Supervisor.js';
import type { AgentStart } from './agentArgs.js';

/** Where a launched process's output goes (default: this process's own stdout/stderr). */
export type OutputSink = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

export const passThrough: OutputSink = (stream, chunk) => (stream === 'stderr' ? process.stderr : process.stdout).write(chunk);

export interface Launcher {
  /** null when the agent is started by someone else (the external launcher) */
  startAgent(a: AgentStart): Promise<ChildHandle | null>;
}
