/**
 * Fuzz target `job-args`: a command line through config/resolveJob.ts (flag parsing with
 * --KEY VALUE / --KEY=VALUE / bare booleans / --adjust-lr, the job file, --nodes with
 * --include/--exclude, the world size check), as `up` and `check-config` see it. Input: one
 * argument per line. The arguments `@job`, `@hosts` and `@hosts_bad` name files in a scratch
 * folder (a valid job, a valid and a broken hostfile); anything else is taken as written. Only
 * a ConfigError with at least one problem is a documented refusal; an accepted command line
 * must place every rank of its hosts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localHostsForJob, resolveJob } from '../../src/config/resolveJob.js';
import { worldSizeOf } from '../../src/config/hostfile.js';
import { refused, writeDeepSpeedFiles } from './config.js';
import { check, expectOnly, scratchDir } from './harness.js';

const JOB = 'stage: sft\nfinetuning_type: lora\ncutoff_len: 64\nmax_steps: 4\nsequence_parallel_size: 2\ndeepspeed: ds.json\n';

function setup(dir: string): void {
  writeDeepSpeedFiles(dir);
  writeFileSync(join(dir, 'job.yaml'), JOB);
  writeFileSync(join(dir, 'hosts.txt'), '# two hosts\n127.0.0.1 slots=2\nnode-1:2\n');
  writeFileSync(join(dir, 'hosts_bad.txt'), '127.0.0.1 slots=0\n127.0.0.1 slots=2 extra\n');
}

export function fuzz(data: Buffer): void {
  const dir = scratchDir('job-args', setup);
  // a Map, not an object literal: an argument such as `constructor` must stay the text it is
  const files = new Map([['@job', join(dir, 'job.yaml')], ['@hosts', join(dir, 'hosts.txt')], ['@hosts_bad', join(dir, 'hosts_bad.txt')]]);
  const argv = data.toString('utf8').split('\n').map((a) => files.get(a) ?? a);
  const run = expectOnly(() => resolveJob(argv, { env: {}, commandFlags: { json: 'bool', keys: 'bool' }, defaultHosts: localHostsForJob }), refused);
  if (!run) return;
  check(run.hosts !== undefined && run.ranks !== undefined, 'an accepted command line has no hosts');
  check(run.ranks!.length === worldSizeOf(run.hosts!), `${run.ranks!.length} ranks for a world of ${worldSizeOf(run.hosts!)}`);
  check(worldSizeOf(run.hosts!) % run.job.config.sequence_parallel_size === 0, 'sequence_parallel_size does not divide the world');
}
