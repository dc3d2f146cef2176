/**
 * `ulysses-actors init-model <config.json | model dir | NAME> --out DIR [--seed N] [--force]`:
 * writes a random-initialized HF checkpoint directory (config.json + model.safetensors, F32, HF
 * tensor names) for any model config the engine reads, with the engine's own seeded
 * initialization (Model.create), so `up` can start from real weights files without a download.
 * NAME is one of the configs under examples/models (tiny, small, llama3-mini, qwen2.5-mini,
 * llama3.1-mini, qwen2.5-yarn-mini, qwen3-mini, mistral-mini).
 * Must never write into a non-empty directory without --force, and must never leave a stale
 * weights index behind that would make loaders read other weights than the ones written.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EngineError } from '../../engine/errors.js';
import { Model } from '../../engine/model/index.js';
import { readModelConfig } from '../../engine/modelConfig.js';
import { packageRoot } from '../../util/packageRoot.js';
import { UsageError } from '../UsageError.js';

const USAGE = 'usage: ulysses-actors init-model <config.json | model dir | NAME> --out DIR [--seed N] [--force]';

const HELP = `${USAGE}
  Writes DIR/config.json and DIR/model.safetensors (F32, HF tensor names) with seeded random
  weights: normal(0, initializer_range) matrices, norms 1, biases 0 (the engine's Model.create).
  NAME: a config under examples/models (${exampleNames().join(', ')}).
  --out DIR    where to write (created; refused when it exists and is not empty, unless --force)
  --seed N     initialization seed, a whole number >= 0 (default 0)
  --force      write into a non-empty DIR: replaces config.json and model.safetensors and removes
               a model.safetensors.index.json with its shards (other files such as tokenizer.json stay)`;

interface InitModelArgs {
  spec: string;
  out: string;
  seed: number;
  force: boolean;
}

function exampleNames(): string[] {
  const dir = join(packageRoot(), 'examples', 'models');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => existsSync(join(dir, n, 'config.json'))).sort();
}

function parseArgs(argv: string[]): InitModelArgs {
  const positional: string[] = [];
  let out: string | undefined;
  let seed = 0;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === '--out') out = value();
    else if (flag === '--seed') {
      const s = value();
      seed = /^\d+$/.test(s) ? Number(s) : NaN;
      if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be a whole number >= 0, got ${JSON.stringify(s)}`);
    } else if (flag === '--force') force = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${flag}\n${USAGE}`);
    else positional.push(a);
  }
  if (positional.length !== 1) throw new UsageError(`expected one model config, got ${positional.length}\n${USAGE}`);
  if (!out) throw new UsageError(`--out DIR is required\n${USAGE}`);
  return { spec: positional[0]!, out, seed, force };
}

/** The config.json to read: the file itself, DIR/config.json, or examples/models/NAME/config.json. */
function resolveConfigFile(spec: string): string {
  if (existsSync(spec) && statSync(spec).isFile()) return resolve(spec);
  const candidates = [join(spec, 'config.json'), join(packageRoot(), 'examples', 'models', spec, 'config.json')];
  for (const c of candidates) if (existsSync(c)) return resolve(c);
  throw new UsageError(
    `${spec}: no such config file, no config.json in that directory, and not an example model name (${exampleNames().join(', ')})`,
  );
}

/** Files of a sharded checkpoint in DIR: the index and the shards it names. */
async function shardedFiles(dir: string): Promise<string[]> {
  const index = join(dir, 'model.safetensors.index.json');
  if (!existsSync(index)) return [];
  const files = new Set<string>([index]);
  try {
    const json = JSON.parse(await readFile(index, 'utf8')) as { weight_map?: Record<string, unknown> };
    for (const f of Object.values(json.weight_map ?? {})) {
      // Only plain *.safetensors names inside DIR: an index must never make this delete anything
      // else (a tokenizer, a file outside DIR).
      if (typeof f === 'string' && /^[^/\\]+\.safetensors$/.test(f)) files.add(join(dir, f));
    }
  } catch {
    // An unreadable index is removed all the same: it is what would shadow model.safetensors.
  }
  return [...files];
}

export async function initModelCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const a = parseArgs(argv);
  const file = resolveConfigFile(a.spec);
  let config;
  try {
    config = await readModelConfig(file);
  } catch (e) {
    // An unreadable or unsupported config is bad input (exit 2), not a failed job.
    if (e instanceof EngineError && (e.code === 'ERR_CONFIG' || e.code === 'ERR_FILE')) throw new UsageError(e.message);
    throw e;
  }
  if (existsSync(a.out)) {
    if (!statSync(a.out).isDirectory()) throw new UsageError(`--out ${a.out} exists and is not a directory`);
    if (readdirSync(a.out).length > 0 && !a.force) throw new UsageError(`--out ${a.out} exists and is not empty; give --force to write into it`);
  }
  const model = await Model.create(config, { seed: a.seed });
  const numParams = model.numParams;
  try {
    // A stale index would win over model.safetensors in every loader (ours and HF's).
    for (const f of await shardedFiles(a.out)) await rm(f, { force: true });
    await model.save(a.out);
  } finally {
    model.close();
  }
  const size = (numParams * 4) / 2 ** 20;
  process.stdout.write(
    `wrote ${a.out}: config.json and model.safetensors (${config.modelType}, ${numParams} parameters, F32, ${size.toFixed(1)} MiB, seed ${a.seed}) from ${file}\n`,
  );
  return 0;
}
