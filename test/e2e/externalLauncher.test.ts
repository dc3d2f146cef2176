// `up --launcher external` prints the exact agent command for each host and waits; this test plays
// Slurm/Kubernetes: it runs the printed commands itself (host 0 with the key file path as printed,
// host 1 with `--job-key -` and the key file piped on stdin). The job completes and every process
// of it is gone afterwards.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, cleanEnv, spawnCli } from '../helpers/cli.js';
import { collect, gone, jobPids, killAll, readEvents, waitFor } from '../helpers/jobProcesses.js';

t.test('external launcher: the printed agent commands join the job', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'out');
  writeFileSync(join(dir, 'hosts.txt'), '127.0.0.1 slots=1\n127.0.0.2 slots=1\n');
  const up = spawnCli([
    'up', '--nodes', join(dir, 'hosts.txt'), '--launcher', 'external', '--workload', 'synthetic', '--synthetic-step-ms', '30',
    '--max_steps', '12', '--cluster.heartbeat_interval_s', '0.2', '--cluster.shutdown_grace_s', '1', '--cluster.rendezvous_timeout_s', '30', '--output_dir', out,
  ]);
  const io = collect(up);
  const started: number[] = [];
  t.teardown(() => killAll([up.pid!, ...started, ...jobPids(readEvents(join(out, 'events.ndjson')))]));

  const lines = await waitFor('the printed agent commands', () => {
    const l = io.out().split('\n').filter((x) => /^ {2}host \d+ \(/.test(x));
    return l.length === 2 ? l : undefined;
  }, 30_000);
  const argvOf = (line: string) => {
    const cmd = line.slice(line.indexOf('): ') + 3);
    const words = cmd.split(/\s+/);
    t.equal(words[0], 'ulysses-actors', 'the printed command runs the ulysses-actors binary');
    return words.slice(1);
  };
  const a0 = argvOf(lines[0]!);
  const a1 = argvOf(lines[1]!);
  t.match(a0.join(' '), /^agent --join tcp:\/\/127\.0\.0\.1:\d+ --job-key \S+ --host-index 0 --slots 1$/);
  t.match(a1.join(' '), /--host-index 1 --slots 1$/);
  const keyFile = a0[a0.indexOf('--job-key') + 1]!;
  t.match(io.out(), /--job-key - </, 'the stdin alternative is printed too');

  // host 0: exactly as printed
  const agent0 = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, ...a0], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  // host 1: the key on stdin instead of a path
  const a1stdin = a1.map((w, i) => (a1[i - 1] === '--job-key' ? '-' : w));
  const agent1 = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, ...a1stdin], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  started.push(agent0.pid!, agent1.pid!);
  agent1.stdin!.end(readFileSync(keyFile));
  const io0 = collect(agent0);
  const io1 = collect(agent1);

  const { code } = await io.exit;
  t.equal(code, 0, `up exits 0\n${io.err()}`);
  t.match(io.out(), /job succeeded: 12 steps/);
  t.equal((await io0.exit).code, 0, `agent 0 exits 0\n${io0.err()}`);
  t.equal((await io1.exit).code, 0, `agent 1 exits 0\n${io1.err()}`);
  const events = readEvents(join(out, 'events.ndjson'));
  t.same(events.filter((e) => e.type === 'agent.joined').map((e) => e.pid).sort(), [agent0.pid, agent1.pid].sort(), 'the agents that joined are the ones the test started');
  t.same(await gone([...started, ...jobPids(events)]), [], 'no process of the job is left');
});

t.test('an agent with a bad key on stdin exits 2 without joining', async (t) => {
  const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, 'agent', '--join', 'tcp://127.0.0.1:9', '--job-key', '-'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const io = collect(child);
  t.teardown(() => killAll([child.pid!]));
  child.stdin!.end('{"version":1,"jobId":"x"}\n');
  const { code } = await io.exit;
  t.equal(code, 2, io.err());
  t.match(io.err(), /job key on stdin is malformed/);
  t.notMatch(io.err(), /secretKey/);
});
