/**
 * The node agent's command line, shared by every launcher, and POSIX shell quoting for the
 * command lines the ssh launcher runs remotely and the external launcher prints.
 * The job key itself never goes on a command line: only a file path, or `-` (read from stdin).
 */

export interface AgentStart {
  hostIndex: number;
  host: string;
  slots: number;
  joinUrl: string;
  keyFile: string;
}

/** `agent --join URL --job-key KEY --host-index I --slots N` (KEY: a path, or `-` for stdin). */
export function agentArgs(a: AgentStart, keyArg: string): string[] {
  return ['agent', '--join', a.joinUrl, '--job-key', keyArg, '--host-index', String(a.hostIndex), '--slots', String(a.slots)];
}

/** Quotes one word for a POSIX shell; plain words stay readable. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function shellLine(words: string[]): string {
  return words.map(shellQuote).join(' ');
}
