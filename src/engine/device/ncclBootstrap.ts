/**
 * How the ranks of one NCCL communicator agree on its unique id: rank 0 makes it and publishes it
 * under a key of the job's rendezvous store (the coordinator's control plane), the others wait
 * for that key. Never a file. The id maker is an argument (the addon's ncclUniqueId on a GPU, a
 * fake in tests). Must never wait without a deadline, and never hand on an id of the wrong size.
 */
import type { RendezvousStore } from '../stores.js';

export const NCCL_ID_BYTES = 128;

export interface NcclBootstrap {
  store: RendezvousStore;
  rank: number;
  size: number;
  /** Names this communicator among the job's (e.g. "sp/0" for the first sequence-parallel group). */
  tag: string;
  timeoutMs: number;
  makeId: () => Uint8Array;
}

export function ncclIdKey(tag: string): string {
  return `nccl/${tag}/id`;
}

function commError(code: 'ERR_COMM_STORE' | 'ERR_COMM_TIMEOUT' | 'ERR_COMM_ARG', message: string, cause?: unknown): Error & { code: string } {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

/** This rank's copy of the communicator's unique id (rank 0: the one it published). */
export async function ncclBootstrap(b: NcclBootstrap): Promise<Uint8Array> {
  if (!Number.isInteger(b.size) || b.size < 1 || !Number.isInteger(b.rank) || b.rank < 0 || b.rank >= b.size)
    throw commError('ERR_COMM_ARG', `NCCL bootstrap: rank ${b.rank} of size ${b.size} (expected 0 <= rank < size)`);
  const key = ncclIdKey(b.tag);
  if (b.rank === 0) {
    const id = b.makeId();
    if (id.length !== NCCL_ID_BYTES) throw commError('ERR_COMM_ARG', `NCCL bootstrap: the id maker gave ${id.length} bytes, expected ${NCCL_ID_BYTES}`);
    await b.store.set(key, id);
    return id;
  }
  let id: Uint8Array;
  try {
    id = await b.store.get(key, b.timeoutMs);
  } catch (e) {
    const code = (e as { code?: unknown }).code === 'ERR_COMM_TIMEOUT' ? 'ERR_COMM_TIMEOUT' : 'ERR_COMM_STORE';
    throw commError(code, `NCCL bootstrap: rank ${b.rank} got no id under ${key} from rank 0 within ${b.timeoutMs} ms (${(e as Error).message})`, e);
  }
  if (id.length !== NCCL_ID_BYTES) throw commError('ERR_COMM_STORE', `NCCL bootstrap: ${key} holds ${id.length} bytes, expected ${NCCL_ID_BYTES}`);
  return id;
}
