/**
 * `ulysses-actors chaos --plan plan.yaml [--workload NAME] [--output-dir DIR] [--json]
 * [--soak-minutes N] [--KEY VALUE ...]`: runs a job under a fault plan (src/chaos), runs the
 * fault-free reference when needed, checks the guarantees and prints a table of the faults (time
 * to detect, time to recover, steps redone, effects) and the guarantees. With --soak-minutes the
 * plan runs round after round with new seeds for that long (runSoak.ts). Exit 0 only if every
 * guarantee holds, 1 otherwise (also when the plan cannot run on this machine, with the reason),
 * 2 for a bad plan or bad flags (every problem listed). `--KEY VALUE` overrides job config keys
 * on top of the plan's `job`, parsed and checked exactly as `up` does (dotted, or the last part
 * when unique: --cluster.heartbeat_interval_s 0.5, --heartbeat_interval_s 0.5).
 * Never leaves a process of the job running when it returns.
 */
import { resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultPlanError, loadFaultPlan } from '../../chaos/FaultPlan.js';
import { formatProblem, parseJobArgs } from '../../config/index.js';
import { ChaosUnavailable, formatChaosReport, formatSoakReport, runChaos, runSoak } from '../../chaos/runChaos/index.js';
import { workloads } from '../workloads.js';
import { createLogger } from '../../util/Logger.js';
import { UsageError } from '../UsageError.js';

const HELP = `usage: ulysses-actors chaos --plan plan.yaml [options] [--KEY VALUE ...]
  --plan FILE          the fault plan (see examples/chaos/)
  --workload NAME      synthetic or train (default: the plan's, else synthetic)
  --output-dir DIR     where the faulty and the reference runs write (default: a temp dir)
  --json               print the report as one JSON object on the last line
  --soak-minutes N     run the plan round after round, each with a new seed, for N minutes
  --debug              show the job's logs
  --KEY VALUE          override a job config key (dotted for nested keys)
exit: 0 every guarantee holds, 1 one does not, 2 bad plan or flags`;

export async function chaosCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  // the job keys parse exactly as `up` parses them; the rest are this command's own flags
  const args = parseJobArgs(argv, { plan: 'string', workload: 'string', output_dir: 'string', json: 'bool', debug: 'bool', soak_minutes: 'string' });
  const problems = args.problems.map(formatProblem);
  if (args.configPath !== undefined) problems.push(`${args.configPath}: unexpected argument (the plan is given with --plan FILE)`);
  const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);
  const planPath = str(args.command.plan);
  const workload = str(args.command.workload);
  const outputDir = str(args.command.output_dir);
  const json = args.command.json === true;
  const debug = args.command.debug === true;
  if (!planPath) problems.push('--plan: required (a fault plan YAML file, see examples/chaos/)');
  const soakText = str(args.command.soak_minutes);
  const soakMinutes = soakText === undefined ? null : Number(soakText);
  if (soakMinutes !== null && !(Number.isFinite(soakMinutes) && soakMinutes > 0)) problems.push(`--soak-minutes: must be a number of minutes > 0, got '${soakText}'`);
  if (workload !== undefined && !(workload in workloads)) problems.push(`--workload: unknown workload '${workload}' (known: ${Object.keys(workloads).join(', ')})`);
  if (problems.length) throw new UsageError(`bad arguments:\n${problems.map((p) => `  - ${p}`).join('\n')}\n${HELP}`);

  let plan;
  try {
    plan = loadFaultPlan(resolve(planPath!));
  } catch (e) {
    if (e instanceof FaultPlanError) throw new UsageError(e.message);
    throw e;
  }
  const wl = workload ?? plan.workload ?? 'synthetic';
  if (!(wl in workloads)) throw new UsageError(`${planPath}: workload: unknown workload '${wl}' (known: ${Object.keys(workloads).join(', ')})`);
  const out = resolve(outputDir ?? join(tmpdir(), `ulysses-chaos-${plan.name}-${process.pid}`));
  process.stdout.write(`ulysses-actors chaos: plan ${plan.name} (${plan.faults.length} fault(s)), workload ${wl}; output ${out}\n`);
  const options = { plan, outputDir: out, workload: wl, overrides: args.overrides, adjustLr: args.adjustLr, logger: createLogger(debug ? 'info' : 'silent') };
  try {
    if (soakMinutes !== null) {
      const soak = await runSoak({ ...options, minutes: soakMinutes, onRound: (r, i) => process.stdout.write(`--- round ${i} (seed ${plan.seed + i}) ---\n${formatChaosReport(r)}\n`) });
      process.stdout.write(formatSoakReport(soak, plan.faults) + '\n');
      if (json) process.stdout.write(JSON.stringify(soak) + '\n');
      return soak.ok ? 0 : 1;
    }
    return await runOnePlan(options, json);
  } catch (e) {
    if (!(e instanceof ChaosUnavailable)) throw e;
    process.stderr.write(`ulysses-actors chaos: cannot run plan ${plan.name} on this machine: ${e.message}\n`);
    return 1;
  }
}

async function runOnePlan(options: Parameters<typeof runChaos>[0], json: boolean): Promise<number> {
  const report = await runChaos(options);
  process.stdout.write(formatChaosReport(report) + '\n');
  if (json) {
    const { result, ...rest } = report;
    process.stdout.write(JSON.stringify({ ...rest, result: { ...result, giveUp: result.giveUp ? { ...result.giveUp, firstFailure: { ...result.giveUp.firstFailure, exit: { ...result.giveUp.firstFailure.exit, detail: undefined } } } : undefined } }) + '\n');
  }
  return report.ok ? 0 : 1;
}
