// Validation of the sequence-parallel layout before any process starts: the head rules of
// REFERENCE §2 (H % P, kv heads split or replicated) and world % P, each refusal naming the
// numbers and the SP degrees that would work. Pure: no processes.
import t from 'tap';
import { parallelProblems, validateParallel } from '../../src/train/validateParallel.js';
import { headsSplit, kvHeadsPerRank, validSpDegrees } from '../../src/engine/headSplit.js';

t.test('valid layouts pass: MHA, GQA split, kv replication, world of several SP blocks', async (t) => {
  for (const s of [
    { heads: 8, kvHeads: 8, sp: 2, world: 2 },
    { heads: 8, kvHeads: 4, sp: 4, world: 8 },
    { heads: 8, kvHeads: 2, sp: 4, world: 4 },
    { heads: 8, kvHeads: 1, sp: 8, world: 8 },
    { heads: 14, kvHeads: 2, sp: 2 },
    { heads: 7, kvHeads: 7, sp: 1, world: 3 },
  ]) {
    t.same(parallelProblems(s), [], `H=${s.heads} Hkv=${s.kvHeads} P=${s.sp} world=${s.world ?? '-'}`);
    t.doesNotThrow(() => validateParallel(s));
  }
});

t.test('heads not divisible by P: refused, naming H, P and the degrees that work', async (t) => {
  const p = parallelProblems({ heads: 12, kvHeads: 4, sp: 8, world: 8 });
  t.equal(p.length, 1);
  t.match(p[0]!.message, /12 attention heads are not divisible by sequence_parallel_size 8/);
  t.match(p[0]!.fix, /\{1, 2, 4\}/, `fix: ${p[0]!.fix}`);
});

t.test('kv heads neither split over P nor divide it: refused with both remainders', async (t) => {
  // H=12, Hkv=3, P=2: 12 % 2 == 0, but 3 % 2 = 1 and 2 % 3 = 2.
  const p = parallelProblems({ heads: 12, kvHeads: 3, sp: 2 });
  t.equal(p.length, 1);
  t.match(p[0]!.message, /3 key\/value heads neither split over sequence_parallel_size 2 \(3 % 2 = 1\) nor divide it for replication \(2 % 3 = 2\)/);
  t.match(p[0]!.fix, /\{1, 3, 6, 12\}/, `fix: ${p[0]!.fix}`);
  // H=24, Hkv=6, P=4: Hkv % P = 2, P % Hkv = 4.
  t.equal(parallelProblems({ heads: 24, kvHeads: 6, sp: 4 }).length, 1);
});

t.test('world not a multiple of P: refused', async (t) => {
  const p = parallelProblems({ heads: 8, kvHeads: 8, sp: 4, world: 6 });
  t.equal(p.length, 1);
  t.match(p[0]!.message, /must divide the world size 6/);
  t.match(p[0]!.fix, /\{1, 2\}/, `fix: ${p[0]!.fix}`);
});

t.test('every problem at once, thrown as a ConfigError with code ERR_CONFIG', async (t) => {
  const e = t.throws(() => validateParallel({ heads: 6, kvHeads: 3, sp: 4, world: 6, source: 'm/config.json' })) as Error & { code?: string; problems?: unknown[] };
  t.equal(e.name, 'ConfigError');
  t.equal(e.code, 'ERR_CONFIG');
  t.equal(e.problems!.length, 2, e.message);
  t.match(e.message, /m\/config\.json/);
  t.equal(parallelProblems({ heads: 8, kvHeads: 8, sp: 0 }).length, 1, 'P = 0');
  t.equal(parallelProblems({ heads: 8, kvHeads: 3, sp: 2 }).length, 1, 'Hkv not dividing H');
});

t.test('agrees with the communicator\'s kv rule for every small (H, Hkv, P)', async (t) => {
  let checked = 0;
  for (let H = 1; H <= 16; H++) {
    for (let Hkv = 1; Hkv <= H; Hkv++) {
      if (H % Hkv) continue;
      for (let P = 1; P <= 16; P++) {
        let native = H % P === 0;
        if (native) {
          try {
            kvHeadsPerRank(Hkv, P);
          } catch {
            native = false;
          }
        }
        if (headsSplit(H, Hkv, P) !== native) t.fail(`H=${H} Hkv=${Hkv} P=${P}: ${headsSplit(H, Hkv, P)} vs ${native}`);
        checked++;
      }
    }
  }
  t.pass(`${checked} combinations agree`);
  t.same(validSpDegrees(8, 2), [1, 2, 4, 8]);
  t.same(validSpDegrees(8, 2, 4), [1, 2, 4]);
});
