/** `ulysses-actors chart [--format json|mermaid]`: exports the training-policy statechart. */
import { parseArgs } from 'node:util';
import { UsageError } from '../UsageError.js';
import { chartToMermaid, exportChart } from '../../statecharts/exportChart.js';
import { trainingPolicyMachine } from '../../statecharts/trainingPolicy.js';

export async function chartCommand(argv: string[]): Promise<number> {
  let format: string;
  try {
    const { values } = parseArgs({ args: argv, options: { format: { type: 'string', default: 'mermaid' } }, strict: true });
    format = values.format!;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const chart = exportChart(trainingPolicyMachine);
  if (format === 'json') process.stdout.write(JSON.stringify(chart, null, 2) + '\n');
  else if (format === 'mermaid') process.stdout.write(chartToMermaid(chart));
  else throw new UsageError(`--format must be json or mermaid, got '${format}'`);
  return 0;
}
