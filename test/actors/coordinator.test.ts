// End to end on loopback: coordinator + local node agent + rank processes running the synthetic
// workload. Checks completion, one_for_all recovery from a checkpoint, giving up on a restart
// storm, that a last step report a transport wrapper still holds when the ranks are gone gets its
// row, and that no process of the job is left.
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../../src/actors/coordinator/index.js';
import { LocalLauncher } from '../../src/actors/launchers/LocalLauncher.js';
import { resolveJobDocument } from '../../src/config/resolveJobDocument.js';
import { cliEntry } from '../../src/util/packageRoot.js';
import { createLogger } from '../../src/util/Logger.js';
import type { FrameHandler, Transport } from '../../src/transport/Transport.js';
import { pidExists as alive } from '../helpers/jobProcesses.js';


function jobConfig(outputDir: string, extra: Record<string, unknown> = {}) {
  return {
    output_dir: outputDir,
    max_steps: 12,
    save_steps: 4,
    synthetic: { step_ms: 30 },
    cluster: { heartbeat_interval_s: 0.5, heartbeat_miss_limit: 6, max_restarts: 2, restart_window_s: 60, shutdown_grace_s: 1, rendezvous_timeout_s: 30, step_timeout_s: 30 },
    ...extra,
  };
}

async function runJob(dir: string, config: Record<string, unknown>, slots = 2) {
  const logger = createLogger('warn');
  const launcher = new LocalLauncher(cliEntry(), logger);
  const coord = new Coordinator({ job: resolveJobDocument(config, { name: 'job.yaml', worldSize: slots }), hosts: [{ host: 'localhost', slots }], launcher, logger, workload: 'synthetic' });
  const result = await coord.run();
  const events = readFileSync(join(dir, 'events.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const pids = [...launcher.children.map((c) => c.pid!), ...events.filter((e) => e.type === 'rank.joined').map((e) => e.pid as number)];
  return { result, events, pids };
}

t.test('a 2-rank job runs to completion and leaves no process behind', async (t) => {
  const dir = t.testdir();
  const { result, events, pids } = await runJob(dir, jobConfig(dir));
  t.equal(result.ok, true, String(result.reason));
  t.equal(result.state, 'succeeded');
  t.equal(result.lastStep, 12);
  t.equal(result.finalHashes.length, 2);
  t.equal(result.finalHashes[0], result.finalHashes[1], 'both ranks end with the same state');
  const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(metrics.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  t.ok(events.some((e) => e.type === 'job.state' && e.state === 'succeeded'));
  t.ok(existsSync(join(dir, 'checkpoint-12', 'state.json')));
  await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(alive), [], `no process left (checked ${pids.length})`);
});

t.test('a last step report held back until the ranks are gone (a reordering network) still gets its row', async (t) => {
  const dir = t.testdir();
  const logger = createLogger('warn');
  const launcher = new LocalLauncher(cliEntry(), logger);
  // holds rank 1's report of the last step (every copy) until drain(): it is overtaken by the
  // rank's final report, and nothing follows it before the rank exits
  let held: (() => void) | null = null;
  let drained = 0;
  const wrap = (inner: Transport): Transport => ({
    send: (to, type, body) => inner.send(to, type, body),
    onFrame: (h: FrameHandler) =>
      inner.onFrame((f, from) => {
        if (f.type === 'rank.step.done' && f.sender === 1 && f.body.step === 12) {
          held ??= () => h(f, from);
          return;
        }
        h(f, from);
      }),
    get stats() {
      return inner.stats;
    },
    drain: async () => {
      drained++;
      const go = held;
      held = null;
      go?.();
    },
    close: async () => {},
  });
  const coord = new Coordinator({ job: resolveJobDocument(jobConfig(dir), { name: 'job.yaml', worldSize: 2 }), hosts: [{ host: 'localhost', slots: 2 }], launcher, logger, workload: 'synthetic', wrapTransport: wrap });
  const result = await coord.run();
  t.equal(result.ok, true, String(result.reason));
  t.equal(drained, 1, 'the coordinator drained its transport once, at shutdown');
  const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.same(metrics.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'every step has its row, the last one too');
});

t.test('a rank failure restarts the whole group from the last checkpoint; same final state', async (t) => {
  const ref = t.testdir();
  const clean = await runJob(ref, jobConfig(ref));
  const dir = join(ref, 'faulty');
  const { result, events, pids } = await runJob(dir, jobConfig(dir, { synthetic: { step_ms: 30, fail_at_step: 7 } }));
  t.equal(result.ok, true, String(result.reason));
  t.equal(result.restarts, 1);
  t.equal(result.finalHashes[0], clean.result.finalHashes[0], 'final state equals the fault-free run');
  const failed = events.find((e) => e.type === 'job.rank.failed');
  t.equal(failed?.rank, 1, 'the failing rank is named');
  t.ok(events.some((e) => e.type === 'job.restarted' && e.attempt === 1));
  await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(alive), []);
});

t.test('a restart storm gives up within the restart intensity and names the first failure', async (t) => {
  const dir = t.testdir();
  const logger = createLogger('silent');
  const launcher = new LocalLauncher(cliEntry(), logger);
  const coord = new Coordinator({
    job: resolveJobDocument(jobConfig(dir, { max_steps: 4 }), { name: 'job.yaml', worldSize: 2 }),
    hosts: [{ host: 'localhost', slots: 2 }],
    launcher,
    logger,
    workload: 'no-such-workload', // every rank exits with code 2 at every start: a restart storm
  });
  const storm = await coord.run();
  t.equal(storm.ok, false);
  t.equal(storm.state, 'failed');
  t.equal(storm.restarts, 2, 'max_restarts restarts, then it gave up');
  t.match(String(storm.reason), /restart intensity exceeded/);
  t.match(String(storm.reason), /first failure: rank\d: exited with code 2/);
  const events = readFileSync(join(dir, 'events.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const pids = [...launcher.children.map((c) => c.pid!), ...events.filter((e) => e.type === 'rank.joined').map((e) => e.pid as number)];
  await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(alive), []);
});

t.test('replicas that disagree on the policy decision fail the job fast, naming the step and the ranks', async (t) => {
  const dir = t.testdir();
  const { result, events, pids } = await runJob(dir, jobConfig(dir, { max_steps: 40, synthetic: { step_ms: 30, diverge_at_step: 5 } }), 3);
  t.equal(result.ok, false);
  t.equal(result.state, 'failed');
  t.match(String(result.reason), /replicas disagree on the gradient policy at step 5/);
  t.match(String(result.reason), /ranks 0,1: synthetic; ranks 2: diverged/);
  t.equal(result.restarts, 0, 'a divergence is not retried');
  t.ok(events.some((e) => e.type === 'job.failed' && e.kind === 'diverged'));
  await new Promise((r) => setTimeout(r, 200));
  t.same(pids.filter(alive), []);
});
