/**
 * Per-job CURVE keys. `up` creates a job key file (mode 0600) holding the coordinator's key pair
 * and the job's client key pair; every agent and rank gets the file. The coordinator's ZAP
 * handler admits only clients that present the job's client public key.
 * Never log or print a secret key.
 */
import { curveKeyPair } from 'zeromq';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

export interface JobKeys {
  version: 1;
  jobId: string;
  server: KeyPair;
  client: KeyPair;
}

export class KeyFileError extends Error {
  readonly code = 'ERR_JOB_KEY';
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export function createJobKeys(jobId = randomBytes(8).toString('hex')): JobKeys {
  return { version: 1, jobId, server: curveKeyPair(), client: curveKeyPair() };
}

export async function writeJobKeys(path: string, keys: JobKeys): Promise<void> {
  await writeFile(path, JSON.stringify(keys) + '\n', { mode: 0o600 });
  await chmod(path, 0o600);
}

const z85Key = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export async function readJobKeys(path: string): Promise<JobKeys> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new KeyFileError(`cannot read job key file ${path}: ${(e as Error).message}`);
  }
  let k: JobKeys;
  try {
    k = JSON.parse(text) as JobKeys;
  } catch {
    throw new KeyFileError(`job key file ${path} is not JSON; pass the file that \`ulysses-actors up\` wrote`);
  }
  const pairs = [k?.server, k?.client];
  if (k?.version !== 1 || typeof k.jobId !== 'string' || pairs.some((p) => !p || !z85Key.test(p.publicKey) || !z85Key.test(p.secretKey))) {
    throw new KeyFileError(`job key file ${path} is malformed (expected version 1 with server and client CURVE key pairs)`);
  }
  return k;
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85-encodes binary whose length is a multiple of 4 (ZAP hands the client key over as 32 raw bytes). */
export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) throw new Error('z85: length must be a multiple of 4');
  let out = '';
  for (let i = 0; i < data.length; i += 4) {
    let v = ((data[i]! << 24) >>> 0) + (data[i + 1]! << 16) + (data[i + 2]! << 8) + data[i + 3]!;
    const chunk = new Array<string>(5);
    for (let j = 4; j >= 0; j--) {
      chunk[j] = Z85[v % 85]!;
      v = Math.floor(v / 85);
    }
    out += chunk.join('');
  }
  return out;
}
