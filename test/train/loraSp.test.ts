// LoRA under Ulysses sequence parallelism: two real rank processes on loopback (TCP), each with
// its shard of one packed sequence (uneven length, so padded), activation checkpointing and LoRA
// dropout under a fixed key; the reduced adapter gradients and the loss must equal one process on
// the whole sequence (||g_sp - g_ref|| / ||g_ref|| < 1e-4 per tensor), and the base gradients stay
// zero. The dropout masks are keyed by global token, so the shards draw what one process draws.
import t from 'tap';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validTokenCount } from '../../src/train/data/shard.js';
import { sequenceOf } from '../sp/fixtures/cases.js';
import { LORA_CASE, loraModel } from './fixtures/loraSpCase.js';
import { runRanks } from './helpers/rankProcesses.js';

const RTOL = 1e-4;
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'loraSpRank.ts');

t.test('LoRA with P = 2 (GQA, padding, packed documents, checkpointing, dropout) equals one process', async (t) => {
  const run = await runRanks(t, fixture, 2);
  t.same(run.codes, [0, 0], run.codes.every((c) => c === 0) ? 'both ranks exited with 0' : `exit codes ${run.codes.join(', ')}\n${run.logs.join('\n')}`);
  const ref = await loraModel();
  const seq = sequenceOf(LORA_CASE, 0);
  const r = await ref.forward({ tokens: seq.tokens, labels: seq.labels, positions: seq.positions, docLens: seq.docLens, normalizer: validTokenCount(seq), dropoutKey: LORA_CASE.dropoutKey });
  await ref.backward();
  const loss = run.results[0]!.loss as number;
  const lossErr = Math.abs(loss - r.loss) / Math.abs(r.loss);
  t.ok(lossErr < RTOL, `loss ${loss} vs single process ${r.loss}: relative error ${lossErr.toExponential(2)}`);
  t.equal(run.results[1]!.loss, loss, 'both ranks report the same loss');
  t.equal(Buffer.compare(Buffer.from(run.grads[0]!.buffer), Buffer.from(run.grads[1]!.buffer)), 0, 'both ranks hold the same reduced adapter gradient bits');
  t.same(run.results.map((x) => x.baseMax), [0, 0], 'no base gradient on either rank');
  const l = ref.lora!;
  let worst = 0;
  let worstName = '';
  for (const v of l.views) {
    const a = run.grads[0]!.subarray(v.offset, v.offset + v.numel);
    const b = l.grads.subarray(v.offset, v.offset + v.numel);
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += b[i]! ** 2;
    }
    const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
    if (!(e <= worst)) {
      worst = e;
      worstName = v.name;
    }
  }
  t.ok(worst < RTOL, `every adapter gradient (${l.views.length} tensors) within ${RTOL}: worst ${worstName} ${worst.toExponential(2)}`);
});
