/**
 * `ulysses-actors keygen FILE`: writes a new job key file (mode 0600) for `up --job-key FILE` and
 * `agent --job-key FILE`, for schedulers that hand the same secret to every pod (a Kubernetes
 * secret) or node. Refuses to overwrite a file. Never prints the key.
 */
import { existsSync } from 'node:fs';
import { createJobKeys, writeJobKeys } from '../../transport/keys.js';
import { UsageError } from '../UsageError.js';

export async function keygenCommand(argv: string[]): Promise<number> {
  if (argv.length !== 1 || argv[0]!.startsWith('-')) throw new UsageError('usage: ulysses-actors keygen FILE');
  const file = argv[0]!;
  if (existsSync(file)) throw new UsageError(`${file} exists; a job key is never overwritten`);
  await writeJobKeys(file, createJobKeys());
  process.stdout.write(`wrote a job key to ${file} (mode 0600)\n`);
  return 0;
}
