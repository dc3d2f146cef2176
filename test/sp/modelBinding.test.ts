// The model's sequence-parallel switch in one process, over a communicator of one rank (P = 1:
// every all-to-all is a copy): Ulysses attention gives the local result, counts its traffic, is
// refused while a forward awaits its backward (ERR_STATE) or over a closed communicator
// (ERR_COMM_CLOSED), and can be removed again.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Communicator } from '../../src/engine/Communicator.js';
import { Model } from '../../src/engine/model/index.js';
import { fileStore } from '../../src/engine/stores.js';
import { SEED, modelConfig, sequenceOf, type SpCase } from './fixtures/cases.js';

const c: SpCase = { name: 'binding', sp: 1, dp: 1, heads: 8, kvHeads: 4, docs: [[20, 17]] };

function maxRel(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

t.test('Ulysses attention over one rank equals local attention; state and closed-communicator refusals', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ua-sp-bind-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const comm = await Communicator.connect({ rank: 0, size: 1, store: fileStore(dir), timeoutMs: 10_000 });
  const seq = sequenceOf(c, 0);
  const input = { tokens: seq.tokens, labels: seq.labels, positions: seq.positions, docLens: seq.docLens };
  const local = await Model.create(modelConfig(c), { seed: SEED });
  const sp = await Model.create(modelConfig(c), { seed: SEED });
  t.equal(sp.sequenceParallelStats(), null, 'no stats before sequence parallelism');
  sp.setSequenceParallel(comm);
  const a = await local.forwardBackward(input);
  const b = await sp.forwardBackward(input);
  t.equal(b.loss, a.loss, `the same loss (${b.loss} vs ${a.loss})`);
  const rel = maxRel(sp.grads, local.grads);
  t.ok(rel <= 1e-6, `the same gradients: max |diff| / max |g| = ${rel.toExponential(2)} <= 1e-6`);
  const st = sp.sequenceParallelStats(true)!;
  t.equal(st.degree, 1);
  t.equal(st.allToAlls, 2 * 4 + 4 + 8, `forward 4 per layer, backward 4 (last layer, cached) + 8: ${st.allToAlls}`);
  t.equal(st.cacheHits, 1, 'the last layer reused its forward tensors');
  t.equal(sp.sequenceParallelStats()!.allToAlls, 0, 'reset');

  await sp.forward(input);
  t.throws(() => sp.setSequenceParallel(comm), { code: 'ERR_STATE' }, 'refused while a forward awaits its backward');
  t.throws(() => sp.clearSequenceParallel(), { code: 'ERR_STATE' });
  await sp.backward();
  sp.clearSequenceParallel();
  t.equal(sp.sequenceParallelStats(), null, 'cleared');
  await comm.close();
  t.throws(() => sp.setSequenceParallel(comm), { code: 'ERR_COMM_CLOSED' }, 'a closed communicator is refused');
  local.close();
  sp.close();
});
