// A rank killed (SIGKILL) while the SP group loops on model forwards (the all-to-alls
// of the Ulysses attention): the survivor's model call must reject with a coded ERR_COMM_* error
// within the communicator's timeout (measured from the kill), later calls are refused, and the
// survivor closes its runtime and exits on its own; no process is left.
import t from 'tap';
import { isAlive, runSpRanks } from './fixtures/runSpRanks.js';
import { signalWhenReady } from '../helpers/signalWhenReady.js';

const timeoutMs = 3000;
// Event-loop and scheduling latency allowed on top of the timeout (2 shared cores under load).
const slackMs = 1500;

t.test('a rank killed during the model all-to-alls: the survivor rejects with ERR_COMM_* and exits', async (t) => {
  const victim = 1;
  const kill = signalWhenReady(victim, 'SIGKILL', 200);
  const run = await runSpRanks(t, {
    scenario: 'kill',
    world: 2,
    timeoutMs,
    deadlineMs: 60_000,
    extra: { seqLen: 1024, forwardOnly: true },
    onLine: kill.onLine,
  });
  t.ok(kill.at > 0, 'the victim was killed mid-loop');
  t.equal(run.exit[victim]!.signal, 'SIGKILL', 'the victim died of SIGKILL');
  const k = run.results[0]?.kill;
  t.ok(k, `rank 0 reported:\n${run.logs.join('\n')}`);
  if (k) {
    t.ok(['ERR_COMM_PEER', 'ERR_COMM_TIMEOUT'].includes(k.code), `rank 0: coded error ${k.code} in the ${k.phase}: ${k.message}`);
    const after = k.failedAt - kill.at;
    t.ok(after <= timeoutMs + slackMs, `rank 0: failed ${after} ms after the kill (timeout ${timeoutMs} ms + ${slackMs} ms slack)`);
    t.ok(k.steps >= 1, `rank 0: ${k.steps} forwards completed before the kill`);
    t.equal(k.phase, 'forward', 'rank 0: the failure surfaced from a forward');
    t.equal(k.afterCode, 'ERR_COMM_CLOSED', 'rank 0: a later model call is refused');
  }
  t.same([run.exit[0]!.code, run.exit[0]!.signal], [0, null], 'rank 0 exited on its own with code 0');
  t.notOk(run.pids.some(isAlive), 'no rank process is left');
});
