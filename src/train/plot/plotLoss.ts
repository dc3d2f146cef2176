/**
 * `plot_loss: true`: the PNG pictures LLaMA-Factory's plot_loss writes into output_dir, from the
 * run's metrics.jsonl: `training_loss.png`, and when the run has them `training_eval_loss.png`,
 * `training_eval_accuracy.png` (sft), `training_rewards_accuracies.png` (dpo) and
 * `training_rewards_chosen.png` (kto), each the
 * original series and its smoothed curve (an exponential moving average whose weight grows with
 * the number of points, LLaMA-Factory's rule) against the step. Charts are Vega-Lite specs
 * rendered to SVG by Vega, then to PNG by resvg (system fonts): no pixels drawn by hand. Rows of
 * steps that a restart ran again keep their last value. Must never modify metrics.jsonl.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';

/** The series each stage plots (LLaMA-Factory's keys), in order. */
export const PLOTTED_KEYS: Record<'pt' | 'sft' | 'dpo' | 'rm' | 'kto', readonly string[]> = {
  pt: ['loss', 'eval_loss'],
  sft: ['loss', 'eval_loss', 'eval_accuracy'],
  dpo: ['loss', 'rewards/accuracies', 'eval_loss'],
  rm: ['loss', 'accuracy', 'eval_loss'],
  kto: ['loss', 'eval_loss', 'rewards/chosen'],
};

/** LLaMA-Factory's smoothing: EMA with weight 1.8 * (sigmoid(0.05 n) - 0.5). */
export function smooth(values: readonly number[]): number[] {
  if (values.length === 0) return [];
  const w = 1.8 * (1 / (1 + Math.exp(-0.05 * values.length)) - 0.5);
  let last = values[0]!;
  return values.map((v) => (last = last * w + (1 - w) * v));
}

/** (step, value) of `key` in metrics.jsonl, one per step (the last row of a step wins). */
export function seriesOf(metricsText: string, key: string): { step: number; value: number }[] {
  const byStep = new Map<number, number>();
  for (const line of metricsText.split('\n')) {
    if (!line.trim()) continue;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn last line of a crashed run
    }
    const v = row[key];
    if (typeof row.step === 'number' && typeof v === 'number' && Number.isFinite(v)) byStep.set(row.step, v);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, value]) => ({ step, value }));
}

/** The Vega-Lite spec of one picture (original and smoothed lines, as LLaMA-Factory draws them). */
export function lossChartSpec(key: string, title: string, points: readonly { step: number; value: number }[]): TopLevelSpec {
  const sm = smooth(points.map((p) => p.value));
  const values = [
    ...points.map((p) => ({ step: p.step, value: p.value, series: 'original' })),
    ...points.map((p, i) => ({ step: p.step, value: sm[i]!, series: 'smoothed' })),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // long paths are cut with an ellipsis rather than widening the picture
    title: { text: `training ${key} of ${title}`, fontSize: 14, limit: 640 },
    width: 640,
    height: 400,
    background: 'white',
    data: { values },
    // the original series faint under its smoothed curve; one legend for both
    layer: [
      { transform: [{ filter: "datum.series === 'original'" }], mark: { type: 'line', strokeWidth: 1.2, opacity: 0.6, point: points.length <= 30 } },
      { transform: [{ filter: "datum.series === 'smoothed'" }], mark: { type: 'line', strokeWidth: 2 } },
    ],
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'value', type: 'quantitative', title: key, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['original', 'smoothed'], range: ['#7fa7d9', '#d9534f'] } },
    },
    config: { font: 'DejaVu Sans', legend: { orient: 'top-right' } },
  };
}

/** Renders a Vega-Lite spec to PNG bytes (Vega's SVG renderer, then resvg). */
export async function renderPng(spec: TopLevelSpec): Promise<Buffer> {
  const [vega, vl, { Resvg }] = await Promise.all([import('vega'), import('vega-lite'), import('@resvg/resvg-js')]);
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  } finally {
    view.finalize();
  }
}

/**
 * Writes the stage's pictures into `outputDir`; returns the files written (keys with no data are
 * skipped). `title`: the run's name in the titles (LLaMA-Factory prints output_dir as configured).
 */
export async function plotLoss(outputDir: string, stage: keyof typeof PLOTTED_KEYS, title = outputDir): Promise<string[]> {
  const file = join(outputDir, 'metrics.jsonl');
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const written: string[] = [];
  for (const key of PLOTTED_KEYS[stage]) {
    const points = seriesOf(text, key);
    if (points.length === 0) continue;
    const out = join(outputDir, `training_${key.replace(/\//g, '_')}.png`);
    await writeFile(out, await renderPng(lossChartSpec(key, title, points)));
    written.push(out);
  }
  return written;
}
