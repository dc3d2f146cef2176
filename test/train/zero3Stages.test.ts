// ZeRO stage 3 beyond pt/sft training (REFERENCE §8): held-out evaluation, dpo and kto. Every
// forward of a sharded model gathers over the world, so a replica whose share of a held-out set
// is an item short forwards item 0 once more at its end, not counted; the frozen reference of
// full-FT dpo/kto is sharded like the parameters, over communicators of its own;
// precompute_ref_log_probs scores with the sharded model. As real jobs on loopback (coordinator,
// rank processes, Gloo) with 3 held-out items over 2 replicas: stage 3 gives stage 0's plans,
// its training and evaluation rows (1e-5 relative, absolute below 1: rewards are differences of
// close log-probs) and its final weights (2e-5 relative to each tensor's largest value). Those
// steps hold several sequences per rank (a batch of 2, a pair's two sides, kto's KL sequences):
// stage 3 adds each sequence's world sum into the part where stage 0 adds a rank's sequences
// first, and four AdamW steps at lr 1e-2 carry that rounding to about 1e-5 of the weights (one
// sequence per rank and step is within 1e-6: zero3.test.ts). With the reference precomputed the
// rows and weights are bitwise those of the resident sharded reference.
import t from 'tap';
import { weightsDiff, writeKtoRows, writeSpModel, writeSpPairs } from './helpers/spJob.js';
import { runZeroJob as run, sameRows, writeSftRows, zeroJobLines } from './helpers/zeroJob.js';

const ROWS_RTOL = 1e-5;
const WEIGHTS_RTOL = 2e-5;

const cases = [
  { stage: 'sft', world: 2, sp: 1, data: writeSftRows },
  { stage: 'dpo', world: 2, sp: 1, data: (root: string) => writeSpPairs(root) },
  { stage: 'kto', world: 4, sp: 2, data: (root: string) => writeKtoRows(root, 11) },
] as const;

for (const c of cases) {
  t.test(`zero_stage 3, ${c.stage}, world ${c.world} (sp ${c.sp}) with 3 held-out items: stage 0's rows, evaluation and weights`, async (t) => {
    const root = t.testdir();
    const lines = zeroJobLines(c.stage, writeSpModel(root), c.data(root), c.sp);
    const z0 = await run(t, root, 'z0', lines, c.world, ['zero_stage: 0']);
    const z3 = await run(t, root, 'z3', lines, c.world, ['zero_stage: 3']);
    t.same(z3.planDigests, z0.planDigests, 'every rank\'s plan digest equal to stage 0');
    sameRows(t, z3.metrics, z0.metrics, 'stage 3 against stage 0', ROWS_RTOL);
    const w = await weightsDiff(z0.dir, z3.dir);
    t.ok(w <= WEIGHTS_RTOL, `final weights within ${w.toExponential(2)} <= ${WEIGHTS_RTOL} of stage 0`);
    if (c.stage !== 'sft') {
      // the reference's sums scored once by the sharded model, no reference copy loaded
      const pre = await run(t, root, 'z3pre', lines, c.world, ['zero_stage: 3', 'precompute_ref_log_probs: true']);
      sameRows(t, pre.metrics, z3.metrics, 'precomputed reference against the resident sharded one', ROWS_RTOL);
      t.same(pre.result.finalHashes, z3.result.finalHashes, 'precomputed: bitwise the weights of the resident sharded reference');
    }
  });
}
