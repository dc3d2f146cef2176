/**
 * `ulysses-actors chaos --plan plan.yaml [--workload NAME] [--output-dir DIR] [--json]
 * [--KEY VALUE ...]`: runs a job under a fault plan (src/chaos), runs the fault-free reference
 * when needed, checks the guarantees and prints a table of the faults (time to detect, time to
 * recover, steps redone) and the guarantees. Exit 0 only if every guarantee holds, 1 otherwise,
 * 2 for a bad plan or bad flags (every problem listed). `--KEY VALUE` overrides job config keys
 * (dotted: --cluster.heartbeat_interval_s 0.5), on top of the plan's `job`.
 * Never leaves a process of the job running when it returns.
 */
import { resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultPlanError, loadFaultPlan } from '../../chaos/FaultPlan.js';
import { formatChaosReport, runChaos } from '../../chaos/runChaos/index.js';
import { workloads } from '../workloads.js';
import { createLogger } from '../../util/Logger.js';
import { UsageError } from '../UsageError.js';

const HELP = `usage: ulysses-actors chaos --plan plan.yaml [options] [--KEY VALUE ...]
  --plan FILE          the fault plan (see examples/chaos/)
  --workload NAME      synthetic or train (default: the plan's, else synthetic)
  --output-dir DIR     where the faulty and the reference runs write (default: a temp dir)
  --json               print the report as one JSON object on the last line
  --debug              show the job's logs
  --KEY VALUE          override a job config key (dotted for nested keys)
exit: 0 every guarantee holds, 1 one does not, 2 bad plan or flags`;

/** A flag value as YAML would read it: numbers and booleans typed, the rest strings. */
function typed(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v === 'null') return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  return v;
}

export async function chaosCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  let planPath: string | undefined;
  let workload: string | undefined;
  let outputDir: string | undefined;
  let json = false;
  let debug = false;
  const overrides: Record<string, unknown> = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) {
        problems.push(`${flag}: needs a value`);
        return '';
      }
      i++;
      return v;
    };
    if (flag === '--plan') planPath = value();
    else if (flag === '--workload') workload = value();
    else if (flag === '--output-dir' || flag === '--output_dir') outputDir = value();
    else if (flag === '--json') json = true;
    else if (flag === '--debug') debug = true;
    else if (flag.startsWith('--') && flag.length > 2) {
      const path = flag.slice(2).replace(/-/g, '_').split('.');
      const v = typed(value());
      let o = overrides;
      for (const k of path.slice(0, -1)) o = (o[k] = typeof o[k] === 'object' && o[k] !== null ? o[k] : {}) as Record<string, unknown>;
      o[path[path.length - 1]!] = v;
    } else problems.push(`${a}: unexpected argument (the plan is given with --plan FILE)`);
  }
  if (!planPath) problems.push('--plan: required (a fault plan YAML file, see examples/chaos/)');
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
  const report = await runChaos({ plan, outputDir: out, workload: wl, jobOverrides: overrides, logger: createLogger(debug ? 'info' : 'silent') });
  process.stdout.write(formatChaosReport(report) + '\n');
  if (json) {
    const { result, ...rest } = report;
    process.stdout.write(JSON.stringify({ ...rest, result: { ...result, giveUp: result.giveUp ? { ...result.giveUp, firstFailure: { ...result.giveUp.firstFailure, exit: { ...result.giveUp.firstFailure.exit, detail: undefined } } } : undefined } }) + '\n');
  }
  return report.ok ? 0 : 1;
}
