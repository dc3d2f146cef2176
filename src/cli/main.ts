/**
 * The `ulysses-actors` command line: parses the command word and hands the rest to one command
 * module. The only place in the project that decides exit codes (bin/ulysses-actors sets
 * process.exitCode from the value returned here).
 * Exit codes: 0 success, 1 job failed, 2 bad input, 130 interrupted.
 */
import { ConfigError } from '../config/ConfigError.js';
import { UsageError } from './UsageError.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  bench: {
    summary: 'bench <gemm|attention|step|alltoall|control> [--json]   benchmarks with figures and ratios',
    load: async () => (await import('./commands/bench.js')).benchCommand,
  },
  chart: {
    summary: 'chart [--format json|mermaid]         export the training-policy statechart',
    load: async () => (await import('./commands/chart.js')).chartCommand,
  },
  chaos: {
    summary: 'chaos --plan plan.yaml [--workload NAME] [--KEY VALUE ...]   run a job under a fault plan and check its guarantees',
    load: async () => (await import('./commands/chaos.js')).chaosCommand,
  },
  'check-config': {
    summary: 'check-config job.yaml [--KEY VALUE ...]  print the resolved config or every problem',
    load: async () => (await import('./commands/checkConfig.js')).checkConfigCommand,
  },
  chat: {
    summary: 'chat [job.yaml] [--prompt TEXT] [--json] [--system TEXT] [--KEY VALUE ...]   talk to a model (+ adapters) with a KV cache, or answer one prompt',
    load: async () => (await import('./commands/chat.js')).chatCommand,
  },
  export: {
    summary: 'export job.yaml [--KEY VALUE ...]      as llamafactory-cli export: merge LoRA adapters into the base, write an HF model directory',
    load: async () => (await import('./commands/export.js')).exportCommand,
  },
  agent: {
    summary: 'agent --join tcp://HOST:PORT --job-key FILE|-   a node agent (started by `up`, Slurm or Kubernetes)',
    load: async () => (await import('./commands/agent.js')).agentCommand,
  },
  'init-model': {
    summary: 'init-model <config.json | model dir | NAME> --out DIR [--seed N]   a random-initialized HF checkpoint directory',
    load: async () => (await import('./commands/initModel.js')).initModelCommand,
  },
  keygen: {
    summary: 'keygen FILE                            a job key file for `up --job-key FILE` (Kubernetes secrets)',
    load: async () => (await import('./commands/keygen.js')).keygenCommand,
  },
  rank: {
    summary: 'rank                                   a rank process (started by its node agent)',
    load: async () => (await import('./commands/rank.js')).rankCommand,
  },
  viz: {
    summary: 'viz --replay RUN_DIR [--port N] [--host H]   the statechart visualizer for a run (--follow: a running one)',
    load: async () => (await import('./commands/viz.js')).vizCommand,
  },
  up: {
    summary: 'up [--nodes hosts.txt] [job.yaml] [--launcher local|ssh|external] [--KEY VALUE ...]   run a job',
    load: async () => (await import('./commands/up.js')).upCommand,
  },
};

function usage(): string {
  const lines = Object.values(commands).map((c) => `  ulysses-actors ${c.summary}`);
  return ['usage:', ...lines, '  ulysses-actors --help'].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? EXIT_OK : EXIT_USAGE;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`ulysses-actors: unknown command '${name}'\n${usage()}\n`);
    return EXIT_USAGE;
  }
  try {
    return await (await cmd.load())(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`ulysses-actors ${name}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`ulysses-actors ${name}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const msg = e instanceof Error ? `${(e as { code?: string }).code ? `[${(e as { code?: string }).code}] ` : ''}${e.message}` : String(e);
    process.stderr.write(`ulysses-actors ${name}: failed: ${msg}\n`);
    return EXIT_FAILED;
  }
}
