import { existsSync, readdirSync } from 'node:fs';
import t, { type Test } from 'tap';
import { checkUlyssesLayout, kvHeadsPerRank } from '../../src/engine/headSplit.js';
import { groupMembers } from '../../src/train/groupMembers.js';
import { isAlive, runRanks, type RankRun } from './fixtures/harness.js';

// Checks the `collectives` scenario of every rank (see fixtures/rank.ts for the inputs).
function checkCollectives(t: Test, run: RankRun, P: number) {
  const hashes = new Set<string>();
  const rank0Enter = run.results[0]!.collectives.barrierEnter as number;
  for (let r = 0; r < P; r++) {
    const c = run.results[r]!.collectives;
    for (const n of [1, 10007, 300_001]) {
      const a = c[`allreduce${n}`];
      t.ok(a.maxDiff <= 2e-5, `P=${P} rank ${r}: allReduceSum n=${n} max |diff| vs fp64 ${a.maxDiff} <= 2e-5`);
      hashes.add(`${n}:${a.hash}`);
    }
    t.same(c.broadcast, [1.5, -2, Math.PI, 1e300, P - 1], `P=${P} rank ${r}: broadcast from the last rank`);
    t.same(c.allGather, Array.from({ length: P }, (_, i) => [i, i * 10, 7]).flat(), `P=${P} rank ${r}: allGather Int32`);
    t.same(c.allGatherF64, Array.from({ length: P }, (_, i) => i + 0.25), `P=${P} rank ${r}: allGather Float64`);
    t.same(c.allToAll, Array.from({ length: P }, (_, i) => [0, 1, 2].map((k) => i * 1000 + r * 3 + k)).flat(), `P=${P} rank ${r}: allToAll chunks in source order`);
    t.ok(c.barrierExit >= rank0Enter, `P=${P} rank ${r}: left the barrier at ${c.barrierExit}, not before rank 0 entered it at ${rank0Enter}`);
  }
  t.equal(hashes.size, 3, `P=${P}: allReduceSum gives the same bits on every rank (${[...hashes].join(' ')})`);
}

function checkUlysses(t: Test, run: RankRun, P: number) {
  const expected = ['mha', 'gqa', 'rep2', 'rep1', 'wide', 'widerep'].filter((n) => {
    const [H, Hkv] = { mha: [8, 8], gqa: [8, 4], rep2: [8, 2], rep1: [4, 1], wide: [8, 4], widerep: [8, 2] }[n]!;
    return H! % P === 0 && (Hkv! % P === 0 || P % Hkv! === 0);
  });
  for (let r = 0; r < P; r++) {
    const u = run.results[r]!.ulysses;
    for (const name of expected) {
      const k = u[name];
      t.ok(k, `P=${P} rank ${r}: case ${name} ran`);
      t.equal(k.seqToHead, 0, `P=${P} rank ${r} ${name}: seqToHead vs naive re-layout max |diff| ${k.seqToHead} (exact copy)`);
      t.equal(k.roundTrip, 0, `P=${P} rank ${r} ${name}: headToSeq(seqToHead(x)) max |diff| ${k.roundTrip} (exact)`);
      t.equal(k.seqToHeadKv, 0, `P=${P} rank ${r} ${name}: seqToHeadKv vs naive max |diff| ${k.seqToHeadKv} (exact copy)`);
      t.ok(k.kvBackward <= 1e-6, `P=${P} rank ${r} ${name}: replica-summing kv backward max |diff| ${k.kvBackward} <= 1e-6`);
      t.equal(k.staged, 0, `P=${P} rank ${r} ${name}: the four layouts with the head side in communicator buffers, on every rank: bitwise equal (max |diff| ${k.staged})`);
      t.equal(k.mixed, 0, `P=${P} rank ${r} ${name}: the same with communicator buffers on rank 0 only: bitwise equal (max |diff| ${k.mixed})`);
    }
    const e = u.errors;
    t.equal(e.headsNotDivisible.code, 'ERR_COMM_ARG', `P=${P}: H=${P + 1} refused`);
    t.match(e.headsNotDivisible.message, new RegExp(`H=${P + 1}.*P=${P}`), 'message names H and P');
    if (P === 4) {
      t.equal(e.kvInvalid.code, 'ERR_CONFIG', 'Hkv=3 with P=4 refused');
      t.match(e.kvInvalid.message, /Hkv=3.*P=4/, 'message names Hkv and P');
    }
    t.equal(u.afterErrors, P, `P=${P} rank ${r}: the communicator still works after refused calls`);
  }
}

function checkClean(t: Test, run: RankRun) {
  run.exit.forEach((x, r) => t.same([x.code, x.signal], [0, null], `rank ${r} exited cleanly`));
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
  // Shared-memory names carry the pid of their owner (every rank, in the world and in sub-groups).
  const names = existsSync('/dev/shm') ? readdirSync('/dev/shm') : [];
  const left = names.filter((n) => run.pids.some((pid) => n.startsWith(`ua-comm-p${pid}-`) || n.startsWith(`ua-win-p${pid}-`)));
  t.same(left, [], 'no shared-memory segment name is left behind');
}

t.test('collectives and Ulysses layouts on 2 ranks, all-to-all over TCP', async (t) => {
  const run = await runRanks(t, { scenario: 'collectives,ulysses', size: 2, timeoutMs: 10_000, deadlineMs: 60_000, sharedMemory: false });
  t.equal(run.results.filter((r) => r && !r.error).length, 2, `both ranks report results:\n${run.logs.join('\n')}`);
  t.same(run.results.map((r) => r?.sharedMemory), [false, false], 'TCP path');
  checkCollectives(t, run, 2);
  checkUlysses(t, run, 2);
  checkClean(t, run);
});

t.test('collectives, Ulysses layouts and SP=2 x DP=2 sub-groups on 4 ranks, all-to-all through shared memory', async (t) => {
  const run = await runRanks(t, { scenario: 'collectives,ulysses,groups', size: 4, timeoutMs: 15_000, deadlineMs: 80_000 });
  t.equal(run.results.filter((r) => r && !r.error).length, 4, `all ranks report results:\n${run.logs.join('\n')}`);
  t.same(run.results.map((r) => r?.sharedMemory), [true, true, true, true], 'shared-memory path');
  checkCollectives(t, run, 4);
  checkUlysses(t, run, 4);
  const s = 3, H = 4, d = 2, hg = 2;
  for (let r = 0; r < 4; r++) {
    const g = run.results[r]!.groups;
    const block = Math.floor(r / 2), j = r % 2;
    t.same(g.sp, [j, 2], `rank ${r}: SP block rank/size`);
    t.same(g.dp, [block, 2], `rank ${r}: DP replica rank/size`);
    t.equal(g.spSum, 4 * block + 1, `rank ${r}: allReduceSum over the SP block {${2 * block}, ${2 * block + 1}}`);
    t.equal(g.dpSum, 2 * j + 2, `rank ${r}: allReduceSum over the DP group {${j}, ${j + 2}}`);
    t.same(g.dpGathered, [j, j + 2], `rank ${r}: allGather over the DP group`);
    // Naive seq->head inside the SP block: source i holds x_i[t,h,e] = (2*block+i)*100 + (t*H+h)*d + e.
    const want: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let t2 = 0; t2 < s; t2++)
        for (let hh = 0; hh < hg; hh++) for (let e = 0; e < d; e++) want.push((2 * block + i) * 100 + (t2 * H + j * hg + hh) * d + e);
    t.same(g.xh, want, `rank ${r}: seqToHead inside the SP block`);
  }
  checkClean(t, run);
});

t.test('Ulysses layout validation names the numbers', async (t) => {
  t.equal(kvHeadsPerRank(8, 4), 2, 'Hkv=8, P=4: 2 kv heads per rank');
  t.equal(kvHeadsPerRank(2, 4), 1, 'Hkv=2, P=4: replicated, 1 per rank');
  t.equal(kvHeadsPerRank(1, 2), 1, 'Hkv=1, P=2: replicated');
  t.throws(() => kvHeadsPerRank(3, 4), { code: 'ERR_CONFIG', message: /Hkv=3.*P=4/ });
  t.throws(() => kvHeadsPerRank(6, 4), { code: 'ERR_CONFIG', message: /Hkv=6.*P=4/ });
  t.throws(() => checkUlyssesLayout(6, 6, 4), { code: 'ERR_CONFIG', message: /H=6.*P=4/ });
  t.throws(() => checkUlyssesLayout(8, 8, 4, 6), { code: 'ERR_CONFIG', message: /world size 6.*P=4/ });
  t.doesNotThrow(() => checkUlyssesLayout(8, 2, 4, 8), 'H=8, Hkv=2, P=4, world 8 is valid');
  t.same(groupMembers(5, 8, 2), { spMembers: [4, 5], dpMembers: [1, 3, 5, 7] }, 'rank 5 of 8, sp=2');
  t.same(groupMembers(2, 4, 4), { spMembers: [0, 1, 2, 3], dpMembers: [2] }, 'sp = world: DP group of one');
});
