/**
 * The dataset of a `malformed_row` fault: a small alpaca-format JSONL file (an instruction and
 * its answer per line) with one line cut short, so it is not JSON, and the dataset_info.json that
 * names it. The job trains on it instead of its own data; the training loop must refuse it at
 * once, naming the file and the line. Writes only into the directory it is given.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const MALFORMED_DATASET = 'chaos_rows';
const FILE = 'chaos_rows.jsonl';

export interface MalformedData {
  datasetDir: string;
  dataset: string;
  file: string;
  /** the malformed line (1-based) */
  line: number;
}

export function writeMalformedDataset(dir: string, line: number, rows = 48): MalformedData {
  mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  for (let i = 1; i <= Math.max(rows, line); i++) {
    const good = JSON.stringify({ instruction: `Repeat the number ${i}.`, input: '', output: `${i}` });
    // the same row with its end cut off: no longer a JSON object
    lines.push(i === line ? good.slice(0, Math.floor(good.length / 2)) : good);
  }
  const file = join(dir, FILE);
  writeFileSync(file, lines.join('\n') + '\n');
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify({ [MALFORMED_DATASET]: { file_name: FILE } }, null, 2) + '\n');
  return { datasetDir: dir, dataset: MALFORMED_DATASET, file, line };
}
