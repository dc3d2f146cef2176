// The protocol of the rank fixtures that rankProcesses.ts spawns: argv[2] is {rank, world, dir,
// timeoutMs}; the body runs on a sequence-parallel runtime over a file store in dir (sp = world)
// and its result goes out as one `[rank] result <json>` line (an error as {error}, exit code 1).
// Never calls process.exit: a hang must show as a hang.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileStore } from '../../../src/engine/stores.js';
import { createParallelRuntime } from '../../../src/train/createParallelRuntime.js';
import type { ParallelRuntime } from '../../../src/train/ParallelRuntime.js';

export interface RankArgs {
  rank: number;
  world: number;
  dir: string;
  timeoutMs: number;
}

export function rankMain(body: (rt: ParallelRuntime, args: RankArgs) => Promise<Record<string, unknown>>): void {
  const args = JSON.parse(process.argv[2]!) as RankArgs;
  const main = async () => {
    const store = join(args.dir, 'store');
    mkdirSync(store, { recursive: true });
    const rt = await createParallelRuntime({ rank: args.rank, world: args.world, sp: args.world, store: fileStore(store), timeoutMs: args.timeoutMs, sharedMemory: false });
    try {
      process.stdout.write(`[${args.rank}] result ${JSON.stringify(await body(rt, args))}\n`);
    } finally {
      await rt.close();
    }
  };
  main().catch((e) => {
    process.stdout.write(`[${args.rank}] result ${JSON.stringify({ error: String((e as Error).stack ?? e) })}\n`);
    process.exitCode = 1;
  });
}
