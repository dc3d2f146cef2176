// How the ranks of an NCCL communicator agree on its unique id (src/engine/device/ncclBootstrap.ts),
// CUDA-free: a fake id maker stands in for ncclGetUniqueId and the in-memory rendezvous store (what
// the coordinator serves its ranks) carries the id. Every rank gets rank 0's bytes; a missing rank 0
// is ERR_COMM_TIMEOUT within the deadline; ids of the wrong size never reach NCCL.
import t from 'tap';
import { NCCL_ID_BYTES, ncclBootstrap, ncclIdKey } from '../../src/engine/device/index.js';
import { native } from '../../src/engine/native.js';
import { MemoryStore, type RendezvousStore } from '../../src/engine/stores.js';

function fakeId(seed: number): Uint8Array {
  return Uint8Array.from({ length: NCCL_ID_BYTES }, (_, i) => (i * 31 + seed) & 0xff);
}

t.test('four ranks get rank 0\'s id through the store, whatever the order they start in', async (t) => {
  const store = new MemoryStore();
  let made = 0;
  const makeId = () => {
    made++;
    return fakeId(7);
  };
  const ranks = [3, 1, 0, 2].map((rank) => ncclBootstrap({ store, rank, size: 4, tag: 'sp/0', timeoutMs: 5000, makeId }));
  const ids = await Promise.all(ranks);
  t.equal(made, 1, 'only rank 0 makes an id');
  for (const id of ids) t.same([...id], [...fakeId(7)]);
  t.same([...(await store.get(ncclIdKey('sp/0'), 10))], [...fakeId(7)], 'published under nccl/<tag>/id');
});

t.test('communicators of different tags do not mix', async (t) => {
  const store = new MemoryStore();
  await ncclBootstrap({ store, rank: 0, size: 2, tag: 'sp/0', timeoutMs: 1000, makeId: () => fakeId(1) });
  await ncclBootstrap({ store, rank: 0, size: 2, tag: 'sp/1', timeoutMs: 1000, makeId: () => fakeId(2) });
  const a = await ncclBootstrap({ store, rank: 1, size: 2, tag: 'sp/1', timeoutMs: 1000, makeId: () => fakeId(9) });
  t.same([...a], [...fakeId(2)]);
});

t.test('failures: no rank 0, a short id, a broken store, a bad rank', async (t) => {
  const store = new MemoryStore();
  const t0 = Date.now();
  await t.rejects(ncclBootstrap({ store, rank: 1, size: 2, tag: 'x', timeoutMs: 100, makeId: () => fakeId(0) }), {
    code: 'ERR_COMM_TIMEOUT',
    message: /rank 1 got no id under nccl\/x\/id from rank 0 within 100 ms/,
  });
  t.ok(Date.now() - t0 < 2000, 'within the deadline');
  await t.rejects(ncclBootstrap({ store, rank: 0, size: 2, tag: 'y', timeoutMs: 100, makeId: () => new Uint8Array(16) }), { code: 'ERR_COMM_ARG', message: /16 bytes, expected 128/ });
  await store.set(ncclIdKey('z'), new Uint8Array(5));
  await t.rejects(ncclBootstrap({ store, rank: 1, size: 2, tag: 'z', timeoutMs: 100, makeId: () => fakeId(0) }), { code: 'ERR_COMM_STORE', message: /holds 5 bytes/ });
  const broken: RendezvousStore = {
    set: async () => undefined,
    get: async () => Promise.reject(new Error('connection reset')),
    wait: async () => undefined,
  };
  await t.rejects(ncclBootstrap({ store: broken, rank: 1, size: 2, tag: 'w', timeoutMs: 100, makeId: () => fakeId(0) }), { code: 'ERR_COMM_STORE', message: /connection reset/ });
  await t.rejects(ncclBootstrap({ store, rank: 2, size: 2, tag: 'v', timeoutMs: 100, makeId: () => fakeId(0) }), { code: 'ERR_COMM_ARG' });
});

t.test('the addon\'s id maker: 128 bytes where NCCL loads, ERR_DEVICE naming the cause where not', async (t) => {
  let id: Uint8Array | undefined;
  try {
    id = native().ncclUniqueId();
  } catch (e) {
    t.match(e, { code: 'ERR_DEVICE', message: /NCCL|CUDA/ });
    t.comment(`no NCCL here: ${(e as Error).message}`);
  }
  if (id) t.equal(id.length, NCCL_ID_BYTES);
});
