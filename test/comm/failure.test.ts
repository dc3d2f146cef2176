import t from 'tap';
import { isAlive, runRanks } from './fixtures/harness.js';
import { signalWhenReady } from '../helpers/signalWhenReady.js';

// Every rank loops on 1 MiB-per-peer all-to-alls (fixtures/rank.ts `kill`; `killBarrier` loops on
// barriers, which go through shared memory too); once the victim is in the loop, the test kills
// (or freezes) it. Survivors must reject with a coded error within the communicator's timeout,
// refuse further work, close, and exit on their own.
const timeoutMs = 3000;
// Event-loop and scheduling latency allowed on top of the timeout (2 shared cores under load).
const slackMs = 1500;

t.test('a rank killed (SIGKILL) during a shared-memory all-to-all: the others fail with a coded error and exit', async (t) => {
  const victim = 1;
  const kill = signalWhenReady(victim, 'SIGKILL', 300);
  const run = await runRanks(t, {
    scenario: 'kill',
    size: 3,
    timeoutMs,
    deadlineMs: 60_000,
    sharedMemory: true,
    onLine: kill.onLine,
  });
  t.ok(kill.at > 0, 'the victim was killed mid-loop');
  t.equal(run.exit[victim]!.signal, 'SIGKILL', 'the victim died of SIGKILL');
  for (const r of [0, 2]) {
    const k = run.results[r]?.kill;
    t.ok(k, `rank ${r} reported:\n${run.logs.join('\n')}`);
    if (!k) continue;
    t.ok(['ERR_COMM_PEER', 'ERR_COMM_TIMEOUT'].includes(k.code), `rank ${r}: coded error ${k.code}: ${k.message}`);
    t.ok(k.elapsedMs <= timeoutMs + slackMs, `rank ${r}: failed ${k.elapsedMs} ms after its last completed all-to-all (timeout ${timeoutMs} ms + ${slackMs} ms slack)`);
    t.ok(k.rounds >= 1, `rank ${r}: ${k.rounds} all-to-alls completed before the kill`);
    t.equal(k.afterCode, 'ERR_COMM_CLOSED', `rank ${r}: later collectives are refused`);
    t.same([run.exit[r]!.code, run.exit[r]!.signal], [0, null], `rank ${r} exited on its own with code 0`);
  }
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
});

t.test('a rank killed (SIGKILL) during shared-memory barriers: the other fails with a coded error and exits', async (t) => {
  const victim = 1;
  const kill = signalWhenReady(victim, 'SIGKILL', 300);
  const run = await runRanks(t, {
    scenario: 'killBarrier',
    size: 2,
    timeoutMs,
    deadlineMs: 60_000,
    sharedMemory: true,
    onLine: kill.onLine,
  });
  t.ok(kill.at > 0, 'the victim was killed mid-loop');
  t.equal(run.results[0]?.sharedMemory, true, 'rank 0 ran on the shared-memory path');
  const k = run.results[0]?.killBarrier;
  t.ok(k, `rank 0 reported:\n${run.logs.join('\n')}`);
  if (k) {
    t.ok(['ERR_COMM_PEER', 'ERR_COMM_TIMEOUT'].includes(k.code), `rank 0: coded error ${k.code}: ${k.message}`);
    t.ok(k.elapsedMs <= timeoutMs + slackMs, `rank 0: failed ${k.elapsedMs} ms after its last completed barrier (timeout ${timeoutMs} ms + ${slackMs} ms slack)`);
    t.ok(k.rounds >= 1, `rank 0: ${k.rounds} barriers completed before the kill`);
    t.equal(k.afterCode, 'ERR_COMM_CLOSED', 'rank 0: later collectives are refused');
  }
  t.same([run.exit[0]!.code, run.exit[0]!.signal], [0, null], 'rank 0 exited on its own with code 0');
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
});

t.test('a frozen rank (SIGSTOP) during a TCP all-to-all: the other gets ERR_COMM_TIMEOUT within the timeout', async (t) => {
  const victim = 1;
  const stop = signalWhenReady(victim, 'SIGSTOP', 300);
  const run = await runRanks(t, {
    scenario: 'kill',
    size: 2,
    timeoutMs,
    deadlineMs: 60_000,
    sharedMemory: false,
    onLine: (rank, line, child) => {
      stop.onLine(rank, line, child);
      // The survivor has reported: the frozen victim can go.
      if (rank !== victim && line.includes('] result ') && stop.child) process.kill(stop.child.pid!, 'SIGKILL');
    },
  });
  t.ok(stop.at > 0, 'the victim was frozen mid-loop');
  const k = run.results[0]?.kill;
  t.ok(k, `rank 0 reported:\n${run.logs.join('\n')}`);
  if (k) {
    t.equal(k.code, 'ERR_COMM_TIMEOUT', `rank 0: ${k.message}`);
    t.ok(k.elapsedMs >= timeoutMs - 100 && k.elapsedMs <= timeoutMs + slackMs, `rank 0: timed out after ${k.elapsedMs} ms (timeout ${timeoutMs} ms, slack ${slackMs} ms)`);
    t.equal(k.afterCode, 'ERR_COMM_CLOSED', 'later collectives are refused');
  }
  t.same([run.exit[0]!.code, run.exit[0]!.signal], [0, null], 'rank 0 exited on its own with code 0 while its peer was frozen');
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
});
