import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Communicator } from '../../src/engine/Communicator.js';
import { MemoryStore, fileStore } from '../../src/engine/stores.js';
import { isAlive, runRanks } from './fixtures/harness.js';

t.test('MemoryStore: get waits for set, wait times out with a coded error', async (t) => {
  const s = new MemoryStore();
  const got = s.get('a', 1000);
  await s.set('a', Uint8Array.from([1, 2, 3]));
  t.same(Array.from(await got), [1, 2, 3], 'a pending get resolves once the key is set');
  await t.rejects(s.wait(['a', 'b'], 50), { code: 'ERR_COMM_TIMEOUT' }, 'missing key times out');
});

t.test('JS-backed store: two communicators in one process rendezvous through a MemoryStore', async (t) => {
  const store = new MemoryStore();
  const [a, b] = await Promise.all([0, 1].map((rank) => Communicator.connect({ rank, size: 2, store, timeoutMs: 10_000 })));
  t.teardown(async () => {
    await a!.close();
    await b!.close();
  });
  t.ok(store.size > 0, `the store holds ${store.size} rendezvous keys`);
  const xa = Float32Array.from([1, 2, 3]), xb = Float32Array.from([10, 20, 30]);
  await Promise.all([a!.allReduceSum(xa), b!.allReduceSum(xb)]);
  t.same(Array.from(xa), [11, 22, 33], 'rank 0 sum');
  t.same(Array.from(xb), [11, 22, 33], 'rank 1 sum');
  const [ga, gb] = await Promise.all([a!.allGather(Int32Array.from([5])), b!.allGather(Int32Array.from([6]))]);
  t.same([Array.from(ga), Array.from(gb)], [[5, 6], [5, 6]], 'allGather');
});

t.test('connecting without the peers fails with ERR_COMM_TIMEOUT within the timeout (JS and file stores)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ua-comm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, store] of [['memory', new MemoryStore()], ['file', fileStore(dir)]] as const) {
    const t0 = Date.now();
    await t.rejects(Communicator.connect({ rank: 0, size: 2, store, timeoutMs: 800 }), { code: 'ERR_COMM_TIMEOUT' }, `${name} store`);
    const ms = Date.now() - t0;
    t.ok(ms <= 800 + 1500, `${name} store: rejected after ${ms} ms (timeout 800 ms + 1500 ms slack)`);
  }
});

t.test('JS-backed store served to 2 rank processes over IPC (stands in for the coordinator)', async (t) => {
  const run = await runRanks(t, { scenario: 'collectives', size: 2, timeoutMs: 10_000, deadlineMs: 60_000, ipcStore: true });
  for (let r = 0; r < 2; r++) {
    const c = run.results[r]?.collectives;
    t.ok(c, `rank ${r} reported:\n${run.logs.join('\n')}`);
    if (!c) continue;
    t.ok(c.allreduce10007.maxDiff <= 2e-5, `rank ${r}: allReduceSum max |diff| ${c.allreduce10007.maxDiff} <= 2e-5`);
    t.same(c.allGather, [0, 0, 7, 1, 10, 7], `rank ${r}: allGather`);
    t.same([run.exit[r]!.code, run.exit[r]!.signal], [0, null], `rank ${r} exited cleanly`);
  }
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
});
