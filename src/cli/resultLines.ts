/**
 * What `up` prints about a finished run's evaluation, read from output_dir/eval_results.json: a
 * built-in task's held-out accuracy as `result: accuracy 32.8% (21/64), chance 10%` (with the
 * figure before training and one sentence on what it measures), and do_eval's eval_* figures.
 * Returns no lines when the run wrote no results. Never throws.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Recall {
  answers: number;
  answersCorrect: number;
  answerAccuracy: number;
}

const isRecall = (v: unknown): v is Recall => typeof v === 'object' && v !== null && typeof (v as Recall).answers === 'number' && typeof (v as Recall).answerAccuracy === 'number';

const pct = (x: number) => `${Number((100 * x).toFixed(1))}%`;

export function resultLines(outputDir: string): string[] {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(readFileSync(join(outputDir, 'eval_results.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return [];
  }
  const lines: string[] = [];
  if (isRecall(r.after) && typeof r.chance === 'number') {
    const before = isRecall(r.before) ? `; before training ${pct(r.before.answerAccuracy)} (${r.before.answersCorrect}/${r.before.answers})` : '';
    lines.push(`result:      accuracy ${pct(r.after.answerAccuracy)} (${r.after.answersCorrect}/${r.after.answers}), chance ${pct(r.chance)}${before}`);
    if (typeof r.measures === 'string') lines.push(`             ${typeof r.task === 'string' ? `${r.task}: ` : ''}${r.measures}`);
  }
  const evals = Object.entries(r).filter(([k, v]) => k.startsWith('eval_') && typeof v === 'number' && !/runtime|per_second/.test(k));
  if (evals.length) lines.push(`eval:        ${evals.map(([k, v]) => `${k} ${Number((v as number).toPrecision(5))}`).join(', ')}  (${join(outputDir, 'eval_results.json')})`);
  return lines;
}
