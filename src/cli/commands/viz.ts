/**
 * `ulysses-actors viz --replay RUN_DIR | --follow RUN_DIR [--port N] [--host H]`: serves the
 * statechart visualizer for a finished run (replay) or for a run whose files are still growing
 * (follow). The live view of a job is served by `up` itself. Runs until Ctrl-C (exit 130).
 * Binds loopback unless --host says otherwise; never writes to the run directory.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../UsageError.js';
import { createLogger } from '../../util/Logger.js';
import { startVizServer } from '../../viz/startVizServer.js';

export async function vizCommand(argv: string[]): Promise<number> {
  let values: { replay?: string; follow?: string; port?: string; host?: string; quiet?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { replay: { type: 'string' }, follow: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, quiet: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const problems: string[] = [];
  if (values.replay && values.follow) problems.push('give either --replay or --follow, not both');
  const dir = values.replay ?? values.follow;
  if (!dir) problems.push('viz needs --replay RUN_DIR (a finished run) or --follow RUN_DIR (a running one); `up` serves the live view');
  else if (!existsSync(dir) || !statSync(dir).isDirectory()) problems.push(`run directory '${dir}' does not exist`);
  else if (values.replay && !existsSync(join(dir, 'events.ndjson')) && !existsSync(join(dir, 'metrics.jsonl'))) {
    // a followed run may not have written anything yet; a finished one must have
    problems.push(`'${dir}' holds neither events.ndjson nor metrics.jsonl`);
  }
  let port = 0;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) problems.push(`--port must be an integer 0..65535, got '${values.port}'`);
  }
  if (problems.length) throw new UsageError(problems.join('\n'));

  const logger = createLogger(values.quiet ? 'warn' : 'info');
  const server = await startVizServer({ host: values.host ?? '127.0.0.1', port, runDir: resolve(dir!), follow: Boolean(values.follow), logger });
  process.stdout.write(`visualizer: ${server.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((r) => {
    process.once('SIGINT', () => r('SIGINT'));
    process.once('SIGTERM', () => r('SIGTERM'));
  });
  await server.close();
  return signal === 'SIGINT' ? 130 : 0;
}
