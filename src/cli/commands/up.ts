/**
 * `ulysses-actors up [--nodes hosts.txt] [--config job.yaml | --config_file job.yaml | job.yaml]
 * [--launcher local|ssh|external] [--debug] [--adjust-lr [X]] [--KEY VALUE ...]`: runs a job.
 * Resolves the config and hostfile (every problem at once: exit 2), starts the coordinator, which
 * starts a node agent per host, shows progress, and stops every process of the job on Ctrl-C or
 * SIGTERM (exit 130). Exit 0 on success, 1 when the job failed (reason printed).
 * Diagnostic flags (not in --help): --workload NAME (default train; `synthetic` for control-plane
 * tests), --synthetic-step-ms N, --synthetic-fail-at-step N, --job-key FILE (use, or create, the
 * job key there: for Kubernetes secrets and shared homes under Slurm).
 * Never leaves a process of the job running when it returns.
 */
import { existsSync, readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { Coordinator, type JobResult } from '../../actors/coordinator/index.js';
import { bindProblem, createLaunchers, launcherKinds } from '../../actors/launchers/index.js';
import { ConfigError, formatIgnored, localHostsForJob, parseSyntheticSettings, resolveJob, withOutputDir, type ConfigProblem, type JobSpec } from '../../config/index.js';
import { deviceFacts, deviceProblem } from '../../engine/device/index.js';
import { modelFamilyReport } from '../../train/modelFamilyReport.js';
import { modelParallelProblems } from '../../train/modelParallelProblems.js';
import { createLogger } from '../../util/Logger.js';
import { cliEntry } from '../../util/packageRoot.js';
import { startVizServer } from '../../viz/startVizServer.js';
import { ProgressDisplay } from '../progress.js';
import { workloads } from '../workloads.js';

export const EXIT_INTERRUPTED = 130;

const HELP = `usage: ulysses-actors up [--nodes hosts.txt] [job.yaml | --config job.yaml] [options] [--KEY VALUE ...]
  --nodes FILE            hostfile (DeepSpeed grammar: 'host slots=N'); default: this machine, one rank per SP slot
  --include S / --exclude S   DeepSpeed host selectors (host1@host2:0,1)
  --launcher local|ssh|external   how node agents start (default: local for this machine, ssh for other hosts)
  --debug                 verbose logs
  --adjust-lr [X]         multiply learning_rate by X
  --KEY VALUE             override any config key (see check-config --keys)
Ctrl-C stops every process of the job on every host (exit 130).`;

const intFlag = (command: Record<string, string | boolean>, name: string, problems: ConfigProblem[]): number | undefined => {
  const v = command[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) {
    problems.push({ key: `--${name.replace(/_/g, '-')}`, value: v, message: 'must be a whole number', fix: 'e.g. 20' });
    return undefined;
  }
  return Number(v);
};

export async function upCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const { job, hosts, command, ignored } = resolveJob(argv, {
    env: process.env,
    commandFlags: { workload: 'string', synthetic_step_ms: 'string', synthetic_fail_at_step: 'string', job_key: 'string' },
    defaultHosts: localHostsForJob,
  });
  const problems: ConfigProblem[] = [];
  const workload = typeof command.workload === 'string' ? command.workload : 'train';
  const stepMs = intFlag(command, 'synthetic_step_ms', problems);
  const failAt = intFlag(command, 'synthetic_fail_at_step', problems);
  if (!(workload in workloads)) {
    problems.push({ key: '--workload', value: workload, message: 'unknown workload', fix: `use one of ${Object.keys(workloads).join(', ')}` });
  }
  // the synthetic workload's knobs, when a flag sets one
  const knobs = { ...(stepMs !== undefined ? { step_ms: stepMs } : {}), ...(failAt !== undefined ? { fail_at_step: failAt } : {}) };
  const synthetic = Object.keys(knobs).length ? parseSyntheticSettings(knobs, 'flags', problems) : undefined;

  const hostList = hosts!;
  const launcherSource = job.sources['cluster.launcher'];
  const explicit = launcherSource !== undefined && launcherSource !== 'default';
  const kinds = launcherKinds(hostList.map((h) => h.host), job.cluster.launcher, explicit);
  const bad = bindProblem(hostList.map((h) => h.host), kinds, job.cluster.bindHost);
  if (bad) problems.push({ key: 'cluster.bind_address', value: job.cluster.bindHost, message: bad, fix: 'set --cluster.bind_address 0.0.0.0 (or this host\'s address) so agents can reach the coordinator' });
  const world = hostList.reduce((n, h) => n + h.slots.length, 0);
  // the model must split over sequence_parallel_size (heads, kv replication) before anything starts
  const model = workload === 'train' ? modelFamilyReport(job.config.model_name_or_path) : null;
  if (workload === 'train') problems.push(...modelParallelProblems(job.config.model_name_or_path, job.config.sequence_parallel_size, world), ...model!.problems);
  // device: cuda must be computable on this machine's ranks (remote hosts check their own at start)
  if (job.config.device === 'cuda' && kinds.includes('local')) {
    const p = deviceProblem('cuda', deviceFacts());
    if (p) problems.push({ key: 'device', value: 'cuda', ...p });
  }
  if (problems.length) throw new ConfigError(problems);

  const ignoredLine = formatIgnored(ignored);
  if (ignoredLine) process.stderr.write(ignoredLine + '\n');

  const outputDir = resolve(job.config.output_dir);
  const spec: JobSpec = { ...withOutputDir(job, outputDir), ...(synthetic ? { synthetic } : {}) };
  const tty = process.stdout.isTTY === true;
  const out = (text: string) => process.stdout.write(text);
  const logger = createLogger(job.config.debug ? 'debug' : 'warn', undefined, 'up');
  const launcher = createLaunchers({ kinds, cluster: job.cluster, cliEntry: cliEntry(), logger, write: (l) => out(l + '\n') });
  const total = job.config.max_steps > 0 ? job.config.max_steps : null;
  const progress = new ProgressDisplay({ write: out, tty, total, everySteps: job.config.logging_steps, columns: process.stdout.columns });

  out(
    `ulysses-actors up: ${world} rank${world === 1 ? '' : 's'} on ${hostList.map((h, i) => `${h.host}(${h.slots.length}, ${kinds[i]})`).join(', ')}; ` +
      `workload ${workload}; output ${outputDir}\n`,
  );
  if (model?.description) out(`model: ${model.description}\n`);

  const coord = new Coordinator({
    job: spec,
    hosts: hostList.map((h) => ({ host: h.host, slots: h.slots.length })),
    launcher,
    logger,
    workload,
    jobKeyFile: typeof command.job_key === 'string' ? resolve(command.job_key) : undefined,
    onStep: (row) => progress.step(row),
  });
  coord.events.subscribe((e) => {
    if (e.type === 'job.rank.failed') progress.note(`rank ${e.rank} failed (${e.detectedBy}): ${e.reason.split('\n')[0]}`);
    else if (e.type === 'job.restarted') progress.note(`restarting every rank from the last checkpoint (attempt ${e.attempt})`);
    else if (e.type === 'agent.joined' && job.config.debug) progress.note(`node agent joined: ${e.host} (pid ${e.pid})`);
  });

  // the visualizer follows the coordinator's event log live (loopback unless configured)
  const vizCfg = job.cluster.visualizer;
  const viz = vizCfg.enabled
    ? await startVizServer({ host: vizCfg.host, port: vizCfg.port, live: coord.events, runDir: outputDir, logger })
    : null;
  if (viz) out(`visualizer:  ${viz.url}\n`);

  let interrupted: string | null = null;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      interrupted = sig;
      progress.note(`${sig}: stopping every process of the job...`);
      coord.interrupt();
    } else if (signals === 2) {
      progress.note('still stopping: waiting for the processes of the job to exit (again to force)');
    } else {
      // last resort: the ProcessChild/ssh handlers SIGKILL their process groups on exit
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let result: JobResult;
  try {
    result = await coord.run();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    progress.end();
    await viz?.close();
  }

  const code = interrupted ? EXIT_INTERRUPTED : result.ok ? 0 : 1;
  if (interrupted) out(`interrupted (${interrupted}) at step ${result.lastStep}: every process of the job was stopped\n`);
  else if (result.ok) out(`job succeeded: ${result.lastStep} steps${result.restarts ? `, ${result.restarts} restart(s)` : ''}\n`);
  else {
    process.stderr.write(`job failed: ${result.reason}\n`);
    const tail = result.giveUp?.firstFailure.exit.detail?.stderrTail;
    if (typeof tail === 'string' && tail.trim()) process.stderr.write(`stderr of the first failure (last lines):\n${tail.trim().split('\n').slice(-10).join('\n')}\n`);
  }
  out(`metrics:     ${join(outputDir, 'metrics.jsonl')}\n`);
  out(`events:      ${join(outputDir, 'events.ndjson')}  (replay: ulysses-actors viz --replay ${outputDir})\n`);
  const ckpts = existsSync(outputDir) ? readdirSync(outputDir).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11))) : [];
  out(`checkpoints: ${ckpts.length ? `${join(outputDir, ckpts[ckpts.length - 1]!)} (${ckpts.length} in ${outputDir})` : `none (in ${outputDir})`}\n`);
  return code;
}
