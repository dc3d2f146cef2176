// Real network faults: a two-host job where each host is its own network namespace (NetnsLab),
// the coordinator and host 0's agent in one, host 1's agent in the other, joined by a veth pair;
// the agents are started as the external launcher prints them. The job (the tiny model, SP 2
// across the two hosts, so the all-to-alls cross the veth) must:
//   - survive 5 % packet loss each way on host 1 (nftables `numgen random` drops) without a
//     restart, ending with the files of the same job on loopback;
//   - recover from a partition of host 1 (every packet dropped for 8 s, far beyond the heartbeat
//     detection): the lost ranks are restarted while the coordinator waits for the silent agent
//     (agent.silent, agent.back), and the job still ends with the same files.
// Each fault proves it fired by the packets nftables counted as dropped.
// Skipped, with the reason, only where the kernel refuses network namespaces. The namespaces
// are removed even when a check fails.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { entriesOwnedBy } from '../../src/actors/sweepStale.js';
import { NetnsLab, NetnsRefused } from '../../src/chaos/NetnsLab.js';
import { outputFileHashes } from '../../src/chaos/runChaos/outputFiles.js';
import { binPath, runCli } from '../helpers/cli.js';
import { alive, collect, gone, jobPids, killAll, readEvents, waitFor, type Ev } from '../helpers/jobProcesses.js';

const JOB = ['examples/tiny_pt.yaml', '--max_steps', '12', '--save_steps', '2', '--logging_steps', '1', '--cluster.heartbeat_interval_s', '0.5', '--cluster.heartbeat_miss_limit', '6', '--cluster.shutdown_grace_s', '1', '--cluster.rendezvous_timeout_s', '60', '--cluster.startup_grace_s', '30'];
const node = (argv: string[]) => ['/bin/sh', '-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, binPath, ...argv];

let lab: NetnsLab | null = null;
let refused: string | null = null;
try {
  lab = NetnsLab.create();
} catch (e) {
  if (!(e instanceof NetnsRefused)) throw e;
  refused = e.message;
}
t.teardown(() => lab?.close());

/** Runs the job across the lab's two hosts; `during` gets the events file once training started. */
async function labJob(t: Tap.Test, lab: NetnsLab, out: string, during: (events: string) => Promise<void>) {
  const dir = join(out, '..');
  const hosts = join(dir, `hosts-${out.split('/').pop()}.txt`);
  writeFileSync(hosts, lab.hosts.map((h) => `${h.addr} slots=1`).join('\n') + '\n');
  const up = lab.exec(0, node(['up', ...JOB, '--nodes', hosts, '--launcher', 'external', '--cluster.bind_address', lab.hosts[0]!.addr, '--output_dir', out]), { stdio: ['ignore', 'pipe', 'pipe'] });
  const io = collect(up);
  const agents: number[] = [];
  t.teardown(() => killAll([up.pid!, ...agents, ...jobPids(readEvents(join(out, 'events.ndjson')))].filter(alive)));
  const lines = await waitFor('the printed agent commands', () => {
    const l = io.out().split('\n').filter((x) => /^ {2}host \d+ \(/.test(x));
    return l.length === 2 ? l : undefined;
  }, 60_000);
  const agentIo = lines.map((line, i) => {
    const argv = line.slice(line.indexOf('): ') + 3).split(/\s+/).slice(1);
    const a = lab.exec(i, node(argv), { stdio: ['ignore', 'pipe', 'pipe'] });
    agents.push(a.pid!);
    return collect(a);
  });
  const events = join(out, 'events.ndjson');
  await waitFor('training to start', () => readEvents(events).some((e) => e.type === 'job.step'), 120_000);
  await during(events);
  const { code } = await io.exit;
  const all = readEvents(events);
  for (const a of agentIo) await a.exit;
  return { code, out: io.out(), err: io.err(), events: all, pids: [...agents, ...jobPids(all)] };
}

const restarts = (events: Ev[]) => events.filter((e) => e.type === 'job.restarted').length;

t.test('two hosts in network namespaces: loss is ridden through, a partition is recovered from', { skip: refused ? `the kernel refuses network namespaces here: ${refused}` : false }, async (t) => {
  const dir = t.testdir();
  // the same job on loopback: the math does not depend on the network
  const ref = join(dir, 'reference');
  const r = runCli(['up', ...JOB, '--output_dir', ref], { timeoutMs: 180_000 });
  t.equal(r.status, 0, r.stdout + r.stderr);
  const want = await outputFileHashes(ref);

  await t.test('5 % packet loss each way on host 1: no restart, the same files', async (t) => {
    const out = join(dir, 'loss');
    lab!.loss(1, 5);
    const job = await labJob(t, lab!, out, async () => {});
    const dropped = lab!.dropped(1);
    lab!.heal(1);
    t.ok(dropped > 0, `the loss fired: nftables dropped ${dropped} packets`);
    t.equal(job.code, 0, job.out + job.err);
    t.equal(restarts(job.events), 0, 'no restart');
    t.same(await outputFileHashes(out), want, 'final model and newest checkpoint equal the loopback run');
    t.same(await gone(job.pids), [], 'no process of the job is left');
    t.same(entriesOwnedBy(job.pids), [], 'no /tmp or /dev/shm name of the job is left');
  });

  await t.test('host 1 cut off for 8 s: its ranks are restarted, the agent is waited for, the same files', async (t) => {
    const out = join(dir, 'partition');
    let dropped = 0;
    const job = await labJob(t, lab!, out, async (events) => {
      await waitFor('step 3', () => readEvents(events).some((e) => e.type === 'job.step' && (e.step as number) >= 3), 120_000);
      lab!.partition(1);
      await new Promise((res) => setTimeout(res, 8000));
      dropped = lab!.dropped(1);
      lab!.heal(1);
    });
    t.equal(job.code, 0, job.out + job.err);
    t.ok(dropped > 0, `the partition fired: nftables dropped ${dropped} packets`);
    t.equal(restarts(job.events), 1, 'one restart for the partition');
    t.ok(job.events.some((e) => e.type === 'agent.silent' && e.hostIndex === 1), 'host 1\'s agent went silent');
    t.ok(job.events.some((e) => e.type === 'agent.back' && e.hostIndex === 1), 'and was heard again after the partition');
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    t.same(steps, Array.from({ length: 12 }, (_, i) => i + 1), 'metrics.jsonl holds every step once');
    t.same(await outputFileHashes(out), want, 'final model and newest checkpoint equal the loopback run');
    t.same(await gone(job.pids), [], 'no process of the job is left');
    t.same(entriesOwnedBy(job.pids), [], 'no /tmp or /dev/shm name of the job is left');
  });

  lab!.close();
  t.same(lab!.leftovers(), [], 'the lab\'s network namespaces are gone');
});
