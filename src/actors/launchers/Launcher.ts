/**
 * Launcher: starts the node agent of one host (locally, over ssh, or by telling an external
 * scheduler). The coordinator calls it once per host and supervises what it returns.
 */
import type { ChildHandle } from '../Supervisor.js';
import type { AgentStart } from './agentArgs.js';

export interface Launcher {
  /** null when the agent is started by someone else (the external launcher) */
  startAgent(a: AgentStart): Promise<ChildHandle | null>;
}
