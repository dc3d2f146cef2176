/**
 * Process entry of the CLI: runs the command line and sets the exit code. bin/ulysses-actors
 * loads this file; agents and ranks are started with it directly (`node dist/src/cli/entry.js`).
 */
import { run } from './main.js';

const code = await run(process.argv.slice(2));
// Ranks and agents must not linger after their work (a native thread pool or a late timer could
// keep the loop alive): they exit at once. Other commands let the loop drain.
if (process.argv[2] === 'rank' || process.argv[2] === 'agent') process.exit(code);
process.exitCode = code;
