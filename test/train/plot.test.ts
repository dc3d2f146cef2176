// plot_loss: LLaMA-Factory's pictures from metrics.jsonl (training_loss.png, training_eval_loss.png,
// training_rewards_accuracies.png), drawn by Vega-Lite and resvg: the smoothing is LLaMA-Factory's
// EMA (checked by hand in fp64), rows of steps a restart ran again keep their last value, eval rows
// feed the eval picture, and each file is a real PNG of the chart's size.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PLOTTED_KEYS, lossChartSpec, plotLoss, seriesOf, smooth } from '../../src/train/plot/plotLoss.js';

/** width and height from a PNG's IHDR chunk (after the 8-byte signature). */
function pngSize(buf: Buffer): { w: number; h: number } {
  t.same([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'the PNG signature');
  t.equal(buf.subarray(12, 16).toString('ascii'), 'IHDR');
  return { w: buf.readUInt32BE(16), h: buf.readUInt32BE(20) };
}

t.test('smoothing: an EMA whose weight is 1.8 (sigmoid(0.05 n) - 0.5)', async (t) => {
  const xs = [4, 3, 3.5, 2, 1];
  const w = 1.8 * (1 / (1 + Math.exp(-0.05 * 5)) - 0.5);
  const want: number[] = [];
  let last = 4;
  for (const x of xs) want.push((last = last * w + (1 - w) * x));
  const got = smooth(xs);
  t.ok(got.every((v, i) => Math.abs(v - want[i]!) < 1e-12), `${got.join(', ')} vs ${want.join(', ')}`);
  t.same(smooth([]), []);
  t.equal(smooth([7])[0], 7);
});

t.test('series: one point per step (a restart\'s rerun wins), eval rows apart from step rows', async (t) => {
  const text = [
    { step: 1, loss: 3 }, { step: 2, loss: 2.5 }, { step: 2, eval_loss: 2.9, epoch: 0.5 }, { step: 3, loss: 2.4 },
    { step: 3, loss: 2.2 }, { step: 4, loss: 2.0 }, { step: 4, eval_loss: 2.6 },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n{"step": 5, "lo';
  t.same(seriesOf(text, 'loss'), [{ step: 1, value: 3 }, { step: 2, value: 2.5 }, { step: 3, value: 2.2 }, { step: 4, value: 2.0 }], 'the torn last line is skipped');
  t.same(seriesOf(text, 'eval_loss').map((p) => p.step), [2, 4]);
  const spec = lossChartSpec('loss', 'saves/x', seriesOf(text, 'loss')) as { data: { values: { series: string }[] }; title: { text: string } };
  t.equal(spec.data.values.filter((v) => v.series === 'original').length, 4);
  t.equal(spec.data.values.filter((v) => v.series === 'smoothed').length, 4);
  t.equal(spec.title.text, 'training loss of saves/x', 'LLaMA-Factory\'s title');
  t.same(PLOTTED_KEYS.dpo, ['loss', 'rewards/accuracies', 'eval_loss']);
});

t.test('plotLoss writes the stage\'s PNGs into output_dir, skipping series without data', async (t) => {
  const dir = t.testdir();
  const rows: Record<string, number>[] = [];
  for (let s = 1; s <= 40; s++) {
    rows.push({ step: s, loss: 3 * Math.exp(-s / 12) + 0.1 * Math.sin(s), 'rewards/accuracies': Math.min(1, s / 30) });
    if (s % 10 === 0) rows.push({ step: s, eval_loss: 3 * Math.exp(-s / 15) });
  }
  writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const sft = await plotLoss(dir, 'sft');
  t.same(sft.map((f) => f.slice(dir.length + 1)), ['training_loss.png', 'training_eval_loss.png'], 'no eval_accuracy in the run: no picture of it');
  const dpo = await plotLoss(dir, 'dpo');
  t.same(dpo.map((f) => f.slice(dir.length + 1)), ['training_loss.png', 'training_rewards_accuracies.png', 'training_eval_loss.png']);
  for (const f of dpo) {
    const buf = readFileSync(f);
    const { w, h } = pngSize(buf);
    t.ok(w >= 640 && w < 900 && h >= 400 && h < 600, `${f}: ${w} x ${h} (a 640 x 400 plot with its axes, title and legend)`);
    t.ok(buf.length > 10_000, `${f}: ${buf.length} bytes: lines, text and axes were drawn`);
  }
  t.same(await plotLoss(join(dir, 'none'), 'pt'), [], 'no metrics.jsonl: nothing to draw');
});
