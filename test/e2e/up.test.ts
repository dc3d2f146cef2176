// `ulysses-actors up --nodes` end to end on loopback: a two-host hostfile (127.0.0.1 and
// 127.0.0.2, both started by the local launcher) runs the synthetic workload to completion
// (exit 0), fails (exit 1, reason printed) and is interrupted with SIGINT (exit 130); after each
// run no agent or rank of the job is left. Also: every rank gets torchrun's environment, and bad
// input exits 2 listing every problem with its line.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, spawnCli } from '../helpers/cli.js';
import { alive, collect, gone, jobPids, killAll, readEvents, waitFor } from '../helpers/jobProcesses.js';

const FAST = ['--workload', 'synthetic', '--cluster.heartbeat_interval_s', '0.2', '--cluster.shutdown_grace_s', '1', '--cluster.rendezvous_timeout_s', '30'];

function hostfile(dir: string): string {
  const p = join(dir, 'hosts.txt');
  writeFileSync(p, '# two "hosts" on loopback\n127.0.0.1 slots=1\n127.0.0.2 slots=1\n');
  return p;
}

/** Starts `up`, and registers a teardown that kills whatever it reported (by pid) if a check fails. */
function startUp(t: { teardown(fn: () => void): void }, args: string[], dir: string) {
  const child = spawnCli(['up', ...args]);
  const io = collect(child);
  t.teardown(() => {
    killAll([child.pid!, ...jobPids(readEvents(join(dir, 'events.ndjson')))]);
  });
  return { child, ...io };
}

t.test('a two-host loopback job runs to completion; ranks get the torchrun environment; nothing is left', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const up = startUp(t, ['--nodes', hostfile(dir), ...FAST, '--synthetic-step-ms', '60', '--max_steps', '25', '--save_steps', '10', '--logging_steps', '5', '--output_dir', out], dir);
  // read a live rank's environment while the job runs
  const events = join(out, 'events.ndjson');
  const joined = await waitFor('two ranks to join', () => {
    const j = readEvents(events).filter((e) => e.type === 'rank.joined');
    return j.length === 2 ? j : undefined;
  }, 30_000);
  const envs = joined.map((e) => {
    try {
      const kv = readFileSync(`/proc/${e.pid}/environ`, 'utf8').split('\0').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
      return Object.fromEntries(kv) as Record<string, string>;
    } catch (err) {
      return { error: (err as Error).message } as Record<string, string>;
    }
  });
  // the visualizer is served by `up` while the job runs (loopback, URL printed)
  const vizUrl = /visualizer: +(http:\/\/127\.0\.0\.1:\d+\/?)/.exec(up.out())?.[1];
  t.ok(vizUrl, `visualizer URL printed (${vizUrl})`);
  if (vizUrl) {
    const chart = await fetch(new URL('/api/chart', vizUrl));
    t.equal(chart.status, 200, 'the visualizer answers during the job');
    t.equal(((await chart.json()) as { id: string }).id, 'policy');
    t.match(await (await fetch(vizUrl)).text(), /<html/i, 'the page is served');
  }
  const { code } = await up.exit;
  t.equal(code, 0, `exit 0\n${up.err()}`);
  const started = readEvents(events).find((e) => e.type === 'job.started')!;
  const port = /:(\d+)$/.exec(String(started.url))![1];
  for (const [i, e] of joined.entries()) {
    const env = envs[i]!;
    const rank = e.rank as number;
    t.same(
      { RANK: env.RANK, LOCAL_RANK: env.LOCAL_RANK, WORLD_SIZE: env.WORLD_SIZE, LOCAL_WORLD_SIZE: env.LOCAL_WORLD_SIZE, GROUP_RANK: env.GROUP_RANK, MASTER_ADDR: env.MASTER_ADDR, MASTER_PORT: env.MASTER_PORT, TORCHELASTIC_RESTART_COUNT: env.TORCHELASTIC_RESTART_COUNT, ULYSSES_RESTART_COUNT: env.ULYSSES_RESTART_COUNT },
      { RANK: String(rank), LOCAL_RANK: '0', WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '1', GROUP_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, TORCHELASTIC_RESTART_COUNT: '0', ULYSSES_RESTART_COUNT: '0' },
      `environment of rank ${rank}`,
    );
  }
  t.match(up.out(), /job succeeded: 25 steps/);
  t.match(up.out(), /step 25\/25/);
  t.match(up.out(), new RegExp(`metrics: +${join(out, 'metrics.jsonl').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  t.match(up.out(), /events: +.*events\.ndjson/);
  t.match(up.out(), /checkpoints: +.*checkpoint-20/);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  t.equal(metrics.length, 25);
  const all = readEvents(events);
  t.same(all.filter((e) => e.type === 'agent.joined').map((e) => e.host).sort(), ['127.0.0.1', '127.0.0.2']);
  const pids = jobPids(all);
  t.equal(pids.length, 4, 'two agents and two ranks reported');
  t.same(await gone(pids), [], 'no process of the job is left');
});

t.test('a failing job exits 1 with the reason; nothing is left', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const up = startUp(t, ['--nodes', hostfile(dir), ...FAST, '--synthetic-step-ms', '30', '--synthetic-fail-at-step', '3', '--cluster.max_restarts', '0', '--max_steps', '10', '--output_dir', out], dir);
  const { code } = await up.exit;
  t.equal(code, 1, `exit 1\n${up.err()}`);
  t.match(up.err(), /job failed: .*first failure: rank1: .*synthetic failure at step 3/);
  const pids = jobPids(readEvents(join(out, 'events.ndjson')));
  t.ok(pids.length >= 3, `agents and ranks reported (${pids.length})`);
  t.same(await gone(pids), [], 'no process of the job is left');
});

t.test('SIGINT stops every process of the job and exits 130', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const up = startUp(t, ['--nodes', hostfile(dir), ...FAST, '--synthetic-step-ms', '50', '--max_steps', '100000', '--output_dir', out], dir);
  const events = join(out, 'events.ndjson');
  await waitFor('a few steps', () => readEvents(events).filter((e) => e.type === 'job.step').length >= 3, 30_000);
  const pids = jobPids(readEvents(events));
  t.equal(pids.length, 4);
  t.ok(pids.every(alive), 'the job runs before the interrupt');
  const t0 = Date.now();
  up.child.kill('SIGINT');
  const { code } = await up.exit;
  t.equal(code, 130, `exit 130\n${up.err()}`);
  t.ok(Date.now() - t0 < 15_000, `stopped in ${Date.now() - t0} ms`);
  t.match(up.out(), /interrupted \(SIGINT\)/);
  t.same(await gone(pids), [], 'no process of the job is left');
});

t.test('a malformed hostfile and config exit 2 listing every problem with its line', async (t) => {
  const dir = t.testdir();
  const hosts = join(dir, 'hosts.txt');
  writeFileSync(hosts, '127.0.0.1 slots=1\nnode-b slots=zero\n# fine\n127.0.0.1 slots=2\nbad_host! slots=1\n');
  const job = join(dir, 'job.yaml');
  writeFileSync(job, 'max_steps: 10\nlearning_rat: 0.1\nsave_steps: -4\n');
  const r = runCli(['up', '--nodes', hosts, job, '--workload', 'synthetic'], { timeoutMs: 30_000 });
  t.equal(r.status, 2, r.stderr);
  for (const where of [`${hosts}:2`, `${hosts}:4`, `${hosts}:5`, `${job}:2`, `${job}:3`]) t.match(r.stderr, where, `names ${where}`);
  t.match(r.stderr, /did you mean.*learning_rate/);
  t.notMatch(r.stdout, /ulysses-actors up: \d+ rank/, 'nothing started');

  const r2 = runCli(['up', '--workload', 'no-such', '--synthetic-step-ms', 'fast', '--output_dir', join(dir, 'o')], { timeoutMs: 30_000 });
  t.equal(r2.status, 2, r2.stderr);
  t.match(r2.stderr, /--workload.*unknown workload/);
  t.match(r2.stderr, /--synthetic-step-ms.*whole number/);
});

t.test('a remote host with a loopback-only coordinator is refused before anything starts', async (t) => {
  const dir = t.testdir();
  const hosts = join(dir, 'hosts.txt');
  writeFileSync(hosts, '127.0.0.1 slots=1\nnode-b.example slots=1\n');
  const r = runCli(['up', '--nodes', hosts, '--workload', 'synthetic', '--output_dir', join(dir, 'o')], { timeoutMs: 30_000 });
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /cluster\.bind_address.*node-b\.example/);
});

t.test('without --nodes: this machine with one rank per sequence-parallel slot', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  const r = runCli(['up', ...FAST, '--sequence_parallel_size', '2', '--synthetic-step-ms', '20', '--max_steps', '4', '--warmup_steps', '0', '--output_dir', out], { timeoutMs: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /ulysses-actors up: 2 ranks on localhost\(2, local\)/);
  const events = readEvents(join(out, 'events.ndjson'));
  t.same(events.filter((e) => e.type === 'rank.done').map((e) => e.rank).sort(), [0, 1]);
  t.same(await gone(jobPids(events)), []);
});
