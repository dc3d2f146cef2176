/**
 * `ulysses-actors agent --join tcp://HOST:PORT --job-key FILE|- [--host-index N] [--slots N]
 * [--exit-on-stdin-close]`: a node agent. With `--job-key -` the key file's content is read from
 * the first line of stdin (how the ssh launcher passes it: never on a command line) and kept in a
 * private temporary file for this host's ranks, removed when the agent exits.
 * `--exit-on-stdin-close` (set by the ssh and local launchers): stdin is the lifeline of the
 * session or of `up` itself; when it closes, the agent stops its ranks and exits.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runAgent } from '../../actors/Agent.js';
import { KeyFileError, readJobKeys, writeJobKeys, type JobKeys } from '../../transport/keys.js';
import { cliEntry } from '../../util/packageRoot.js';
import { UsageError } from '../UsageError.js';

const MAX_KEY_BYTES = 64 * 1024;

/** Reads one line from stdin and leaves the stream open (and flowing) for the lifeline. */
function readFirstLine(stdin: NodeJS.ReadStream, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (err: Error | null, line?: string) => {
      clearTimeout(timer);
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      // keep draining so that 'end' fires when the other side closes
      stdin.resume();
      if (err) reject(err);
      else resolve(line!);
    };
    const onData = (chunk: Buffer | string) => {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(null, buf.slice(0, nl));
      else if (buf.length > MAX_KEY_BYTES) done(new KeyFileError('the job key on stdin is too long'));
    };
    const onEnd = () => (buf.trim() ? done(null, buf) : done(new KeyFileError('stdin closed before the job key arrived')));
    const timer = setTimeout(() => done(new KeyFileError(`no job key on stdin within ${timeoutMs / 1000} s`)), timeoutMs);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
  });
}

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
        'exit-on-stdin-close': { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const problems: string[] = [];
  if (!v.join || !/^tcp:\/\/[^:]+:\d+$/.test(v.join)) problems.push('--join must be the coordinator endpoint, tcp://HOST:PORT');
  if (!v['job-key']) problems.push('--job-key FILE is required (the key file `up` wrote, or - to read it from stdin)');
  const hostIndex = Number(v['host-index']);
  const slots = Number(v.slots);
  if (!Number.isInteger(hostIndex) || hostIndex < 0) problems.push('--host-index must be a non-negative integer');
  if (!Number.isInteger(slots) || slots < 1) problems.push('--slots must be a positive integer');
  if (problems.length) throw new UsageError(problems.join('; '));

  let keyFile = v['job-key']!;
  let privateDir: string | null = null;
  if (keyFile === '-') {
    const line = await readFirstLine(process.stdin, 30_000);
    let keys: JobKeys;
    const dir = (privateDir = await mkdtemp(join(tmpdir(), `ulysses-agent-${process.pid}-`)));
    keyFile = join(privateDir, 'job.key');
    // the key copy goes away however the agent ends (process.exit included)
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    try {
      keys = JSON.parse(line) as JobKeys;
      await writeJobKeys(keyFile, keys);
      await readJobKeys(keyFile); // validates the shape with the usual messages
    } catch (e) {
      await rm(privateDir, { recursive: true, force: true });
      if (e instanceof KeyFileError) throw new UsageError(`the job key on stdin is malformed: ${e.message.replace(keyFile, 'stdin')}`);
      throw new UsageError('the job key on stdin is not the JSON key file that `ulysses-actors up` writes');
    }
  }
  if (v['exit-on-stdin-close']) {
    // the session that carries stdout/stderr may be gone (that is what ends the lifeline):
    // a failed log write must not kill the agent before it has stopped its ranks
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    // read (and discard) stdin so that its end is seen; the key line, if any, was read above
    process.stdin.on('error', () => {});
    process.stdin.resume();
  }
  try {
    return await runAgent({
      coordUrl: v.join!,
      keyFile,
      hostIndex,
      slots,
      cliEntry: cliEntry(),
      lifeline: v['exit-on-stdin-close'] ? process.stdin : undefined,
    });
  } finally {
    if (privateDir) await rm(privateDir, { recursive: true, force: true });
  }
}
