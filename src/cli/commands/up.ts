/**
 * `ulysses-actors up [--nodes hosts.txt] [--config job.yaml | --config_file job.yaml | job.yaml]
 * [--launcher local|ssh|external] [--debug] [--adjust-lr [X]] [--KEY VALUE ...]`: runs a job.
 * Resolves the config and hostfile (every problem at once: exit 2), resumes by itself when
 * output_dir holds an interrupted run of the same job (train/outputDirState.ts), starts the
 * coordinator, which starts a node agent per host, shows progress, and stops every process of the
 * job on Ctrl-C or SIGTERM (exit 130). Exit 0 on success, 1 when the job failed (the reason
 * printed once).
 * Diagnostic flags (not in --help): --workload NAME (default train; `synthetic` for control-plane
 * tests), --synthetic-step-ms N, --synthetic-fail-at-step N, --job-key FILE (use, or create, the
 * job key there: for Kubernetes secrets and shared homes under Slurm).
 * Never leaves a process of the job running when it returns.
 */
import { existsSync, readdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { Coordinator, type JobResult } from '../../actors/coordinator/index.js';
import { DETERMINISTIC_EXIT_CODE, failureClassOf } from '../../actors/failureClass.js';
import { bindProblem, createLaunchers, isThisMachine, launcherKinds } from '../../actors/launchers/index.js';
import { ConfigError, formatIgnored, localHostsForJob, parseSyntheticSettings, resolveJob, withOutputDir, type ConfigProblem, type JobSpec } from '../../config/index.js';
import { clearOutputDir } from '../../config/outputDir.js';
import { deviceFacts, deviceProblem } from '../../engine/device/index.js';
import { jobResourceProblems } from '../../train/jobResourceProblems.js';
import { plotLoss } from '../../train/plot/plotLoss.js';
import { createLogger } from '../../util/Logger.js';
import { cliEntry } from '../../util/packageRoot.js';
import { startVizServer } from '../../viz/startVizServer.js';
import { preflight } from '../preflight.js';
import { ProgressDisplay, evalLine, logSink } from '../progress.js';
import { resultLines } from '../resultLines.js';
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
  // memory first, from config.json's numbers alone: a model that cannot fit is refused before any parser allocates for it
  const ranksHere = hostList.reduce((n, h) => n + (isThisMachine(h.host) ? h.slots.length : 0), 0);
  if (workload === 'train' && ranksHere > 0) problems.push(...jobResourceProblems(job.config, ranksHere));
  // device: cuda must be computable on this machine's ranks (remote hosts check their own at start)
  if (job.config.device === 'cuda' && kinds.includes('local')) {
    const p = deviceProblem('cuda', deviceFacts());
    if (p) problems.push({ key: 'device', value: 'cuda', ...p });
  }
  if (problems.length) throw new ConfigError(problems);
  // the model (heads vs sequence_parallel_size, tokenizer), the data, output_dir and the hosts, before anything starts
  const checked = await preflight({ job, hosts: hostList, hostfile: typeof command.nodes === 'string' ? command.nodes : undefined, kinds, workload });
  problems.unshift(...checked.problems);
  const model = { description: checked.model };
  if (problems.length) throw new ConfigError(problems);
  if (job.config.overwrite_output_dir) clearOutputDir(job.config.output_dir);

  const ignoredLine = formatIgnored(ignored);
  if (ignoredLine) process.stderr.write(ignoredLine + '\n');

  const outputDir = resolve(job.config.output_dir);
  let spec: JobSpec = { ...withOutputDir(job, outputDir), ...(synthetic ? { synthetic } : {}) };
  // a run of this same job (same config hash) with a checkpoint in output_dir: go on from its newest
  // checkpoint (preflight refused any other content unless overwrite_output_dir or a resume says what to do)
  const continued = checked.continued;
  if (continued !== null) spec = { ...spec, config: { ...spec.config, resume_from_checkpoint: continued.checkpoint } };
  const tty = process.stdout.isTTY === true;
  const out = (text: string) => process.stdout.write(text);
  const total = job.config.max_steps > 0 ? job.config.max_steps : null;
  const progress = new ProgressDisplay({ write: out, writeErr: (t) => process.stderr.write(t), tty, total, everySteps: job.config.logging_steps, columns: process.stdout.columns });
  // every line of this process and of the agents and ranks goes through the progress display
  const logger = createLogger(job.config.debug ? 'debug' : 'warn', logSink(progress), 'up');
  const launcher = createLaunchers({ kinds, cluster: job.cluster, cliEntry: cliEntry(), logger, write: (l) => progress.note(l), output: (stream, chunk) => progress.output(stream, chunk) });

  out(
    `ulysses-actors up: ${world} rank${world === 1 ? '' : 's'} on ${hostList.map((h, i) => `${h.host}(${h.slots.length}, ${kinds[i]})`).join(', ')}; ` +
      `workload ${workload}; output ${outputDir}\n`,
  );
  if (model?.description) out(`model: ${model.description}\n`);
  if (continued !== null) {
    const run = continued.finished ? 'a finished run' : 'an interrupted run';
    out(`resuming: ${outputDir} holds ${run} of this job (same config hash); it continues from ${continued.checkpoint} (the newest checkpoint whose steps metrics.jsonl logs)\n`);
  }

  const coord = new Coordinator({
    job: spec,
    hosts: hostList.map((h) => ({ host: h.host, slots: h.slots.length })),
    launcher,
    logger,
    workload,
    jobKeyFile: typeof command.job_key === 'string' ? resolve(command.job_key) : undefined,
    onStep: (row) => progress.step(row),
    onEval: (row) => progress.note(evalLine(row)),
  });
  // a failure that ends the job is printed once, at the end; the notes are for those that are recovered from
  let ended = false;
  coord.events.subscribe((e) => {
    if (e.type === 'job.failed') ended = true;
    else if (ended) return;
    if (e.type === 'job.rank.failed') {
      const deterministic = e.detectedBy === 'rank' ? failureClassOf(e.code) === 'deterministic' : e.detectedBy === 'agent' && e.code === DETERMINISTIC_EXIT_CODE;
      if (!deterministic) progress.note(`rank ${e.rank} failed (${e.detectedBy}): ${e.reason.split('\n')[0]}`);
    } else if (e.type === 'job.restarted') progress.note(`restarting every rank from the last checkpoint (attempt ${e.attempt})`);
    else if (e.type === 'agent.silent') progress.note(`node agent of ${e.host} is silent (${e.reason}): waiting for it`);
    else if (e.type === 'agent.back') progress.note(`node agent of ${e.host} is back after ${(e.silentMs / 1000).toFixed(1)} s`);
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
  else if (result.ok && result.trained === 0) out(`job succeeded: ${result.note ?? `nothing to train (resumed at step ${result.lastStep})`}\n`);
  else if (result.ok) out(`job succeeded: ${result.lastStep} steps${result.restarts ? `, ${result.restarts} restart(s)` : ''}\n`);
  else {
    process.stderr.write(`job failed: ${result.reason}\n`);
    const tail = result.giveUp?.firstFailure.exit.detail?.stderrTail;
    if (typeof tail === 'string' && tail.trim()) process.stderr.write(`stderr of the first failure (last lines):\n${tail.trim().split('\n').slice(-10).join('\n')}\n`);
  }
  if (result.ok) for (const l of resultLines(outputDir)) out(l + '\n');
  if (result.ok && !interrupted && job.config.plot_loss) {
    // a picture that cannot be drawn does not fail the job that trained
    try {
      for (const f of await plotLoss(outputDir, job.config.stage, job.config.output_dir)) out(`plot:        ${f}\n`);
    } catch (e) {
      process.stderr.write(`plot_loss: the loss pictures could not be drawn: ${(e as Error).message}\n`);
    }
  }
  out(`metrics:     ${join(outputDir, 'metrics.jsonl')}\n`);
  out(`events:      ${join(outputDir, 'events.ndjson')}  (replay: ulysses-actors viz --replay ${outputDir})\n`);
  const ckpts = existsSync(outputDir) ? readdirSync(outputDir).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11))) : [];
  out(`checkpoints: ${ckpts.length ? `${join(outputDir, ckpts[ckpts.length - 1]!)} (${ckpts.length} in ${outputDir})` : `none (in ${outputDir})`}\n`);
  return code;
}
