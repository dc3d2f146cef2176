/** `ulysses-actors agent --join tcp://HOST:PORT --job-key FILE [--host-index N] [--slots N]`: a node agent. */
import { parseArgs } from 'node:util';
import { runAgent } from '../../actors/Agent.js';
import { cliEntry } from '../entryPath.js';
import { UsageError } from '../UsageError.js';

export async function agentCommand(argv: string[]): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: argv,
      options: {
        join: { type: 'string' },
        'job-key': { type: 'string' },
        'host-index': { type: 'string', default: '0' },
        slots: { type: 'string', default: '1' },
      },
      strict: true,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const problems: string[] = [];
  if (!v.join || !/^tcp:\/\/[^:]+:\d+$/.test(v.join)) problems.push('--join must be the coordinator endpoint, tcp://HOST:PORT');
  if (!v['job-key']) problems.push('--job-key FILE is required (the key file `up` wrote)');
  const hostIndex = Number(v['host-index']);
  const slots = Number(v.slots);
  if (!Number.isInteger(hostIndex) || hostIndex < 0) problems.push('--host-index must be a non-negative integer');
  if (!Number.isInteger(slots) || slots < 1) problems.push('--slots must be a positive integer');
  if (problems.length) throw new UsageError(problems.join('; '));
  return runAgent({ coordUrl: v.join!, keyFile: v['job-key']!, hostIndex, slots, cliEntry: cliEntry() });
}
