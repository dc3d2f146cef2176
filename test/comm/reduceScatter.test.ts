// The reduce-scatter of ZeRO stage 2 (Communicator.reduceScatterSum): each rank gets the sum of its
// chunk of every rank's input, added in rank order (and on 4 ranks also in blocks of 2, as SP pairs
// then replicas), bitwise equal to that float sum done by hand, over TCP (2 ranks) and over shared
// memory (4 ranks), the input left as it was; a length that is not a multiple of the size is
// refused before anything is sent.
import t from 'tap';
import { runRanks } from './fixtures/harness.js';

for (const [size, sharedMemory] of [[2, false], [4, true]] as const) {
  t.test(`reduceScatterSum on ${size} ranks over ${sharedMemory ? 'shared memory' : 'TCP'}`, async (t) => {
    const run = await runRanks(t, { scenario: 'reduceScatter', size, timeoutMs: 10_000, deadlineMs: 60_000, sharedMemory });
    t.equal(run.results.filter((r) => r && !r.error).length, size, `every rank reports:\n${run.logs.join('\n')}`);
    t.same(run.results.map((r) => r?.sharedMemory), Array(size).fill(sharedMemory), sharedMemory ? 'shared-memory path' : 'TCP path');
    for (let r = 0; r < size; r++) {
      const rs = run.results[r]!.reduceScatter;
      for (const block of size === 4 ? [1, 2] : [1]) {
        for (const n of [1, 1500, 300_001]) {
          t.same(rs[`b${block}n${n}`], { length: n, mismatches: 0, inputKept: true }, `rank ${r}, ${n} per rank, blocks of ${block}: the ordered sum, bitwise; the input unchanged`);
        }
      }
      t.equal(rs.badLength?.code, 'ERR_COMM_ARG', `rank ${r}: a length that is not a multiple of the size is refused`);
      t.match(rs.badLength?.message ?? '', /multiple of the size/, 'and the message says why');
    }
    run.exit.forEach((x, r) => t.same([x.code, x.signal], [0, null], `rank ${r} exited cleanly`));
  });
}
