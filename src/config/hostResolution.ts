/**
 * Whether the hosts a job will reach over ssh exist: each hostfile name is looked up as ssh will
 * look it up (`ssh -G` applies the client configuration, so an alias with a HostName resolves to
 * that name), then in the resolver (DNS, /etc/hosts). A name that does not resolve is a typo or
 * a missing DNS entry: the problem names it and its hostfile line. Read-only; bounded by a
 * timeout per host, all hosts at once. Must never connect to a host.
 */
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import type { ConfigProblem } from './ConfigError.js';
import type { HostEntry } from './hostfile.js';

const TIMEOUT_MS = 3000;

const bare = (h: string) => h.slice(h.lastIndexOf('@') + 1);

/** The name ssh would connect to (its HostName for an alias), or the name itself without ssh. */
function sshHostName(host: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('ssh', ['-G', host], { timeout: TIMEOUT_MS }, (err, stdout) => {
      const m = err ? null : /^hostname\s+(\S+)$/m.exec(stdout);
      resolve(m ? m[1]! : bare(host));
    });
  });
}

async function resolves(name: string): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`no answer within ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS)));
  try {
    return await Promise.race([lookup(name).then(() => null, (e: NodeJS.ErrnoException) => e.code ?? e.message), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Problems for the hosts (of `file`) that do not resolve. */
export async function unresolvedHostProblems(hosts: readonly HostEntry[], file: string): Promise<ConfigProblem[]> {
  const found = await Promise.all(
    hosts.map(async (h) => {
      const name = await sshHostName(bare(h.host));
      const why = await resolves(name);
      if (why === null) return null;
      const alias = name !== bare(h.host) ? ` (ssh's HostName for it is ${name})` : '';
      return {
        source: h.line !== undefined ? `${file}:${h.line}` : file,
        value: h.host,
        message: `the host name does not resolve${alias}: ${why === 'ENOTFOUND' ? 'no such host' : why}`,
        fix: 'check its spelling in the hostfile, or add it to DNS, /etc/hosts or ~/.ssh/config (Host ... HostName ...)',
      } satisfies ConfigProblem;
    }),
  );
  return found.filter((p) => p !== null);
}
