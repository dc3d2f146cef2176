import t from 'tap';
import { Supervisor, type ChildHandle, type ChildSpec, type ExitInfo, type Strategy } from '../../src/actors/Supervisor.js';
import { Mailbox } from '../../src/actors/Mailbox.js';
import { SimulatedClock } from '../../src/util/Clock.js';
import { createLogger } from '../../src/util/Logger.js';

/** An in-memory child: tests make it fail or finish; stop() records the order. */
class FakeChild implements ChildHandle {
  exited: Promise<ExitInfo>;
  private resolve!: (e: ExitInfo) => void;
  constructor(readonly id: string, readonly log: string[]) {
    this.exited = new Promise((r) => (this.resolve = r));
  }
  fail(reason = 'boom') {
    this.resolve({ normal: false, reason });
  }
  finish() {
    this.resolve({ normal: true, reason: 'done' });
  }
  async stop() {
    this.log.push(`stop ${this.id}`);
    this.resolve({ normal: false, reason: 'stopped' });
  }
}

function harness(strategy: Strategy, n = 3, maxRestarts = 3, windowMs = 10_000) {
  const clock = new SimulatedClock();
  const log: string[] = [];
  const live = new Map<string, FakeChild>();
  const specs: ChildSpec[] = Array.from({ length: n }, (_, i) => ({
    id: `c${i}`,
    restart: 'transient',
    start: async (attempt) => {
      log.push(`start c${i}#${attempt}`);
      const c = new FakeChild(`c${i}`, log);
      live.set(`c${i}`, c);
      return c;
    },
  }));
  const sup = new Supervisor(specs, { strategy, maxRestarts, restartWindowMs: windowMs, clock, logger: createLogger('silent') });
  return { sup, log, live, clock };
}

const settle = () => new Promise((r) => setTimeout(r, 5));

t.test('one_for_one restarts only the failed child', async (t) => {
  const { sup, log, live } = harness('one_for_one');
  await sup.start();
  log.length = 0;
  live.get('c1')!.fail();
  await settle();
  t.same(log, ['start c1#1']);
  await sup.close();
});

t.test('one_for_all stops every child in reverse order and restarts all in order', async (t) => {
  const { sup, log, live } = harness('one_for_all');
  await sup.start();
  log.length = 0;
  live.get('c1')!.fail();
  await settle();
  t.same(log, ['stop c2', 'stop c0', 'start c0#1', 'start c1#1', 'start c2#1']);
  t.equal(sup.restartCount, 1);
  await sup.close();
});

t.test('one_for_all: children of one generation failing together cause one restart, not one each', async (t) => {
  const { sup, log, live } = harness('one_for_all');
  await sup.start();
  log.length = 0;
  // a crashed rank and its peer failing in the same moment (both settle before the restart runs)
  live.get('c1')!.fail('root cause');
  live.get('c2')!.fail('echo of c1');
  await settle();
  t.equal(sup.restartCount, 1, `restarts: ${sup.restartCount} (log: ${log.join(', ')})`);
  t.same(log, ['stop c0', 'start c0#1', 'start c1#1', 'start c2#1']);
  await sup.close();
});

t.test('rest_for_one restarts the failed child and those started after it', async (t) => {
  const { sup, log, live } = harness('rest_for_one');
  await sup.start();
  log.length = 0;
  live.get('c1')!.fail();
  await settle();
  t.same(log, ['stop c2', 'start c1#1', 'start c2#1']);
  await sup.close();
});

t.test('restart intensity: gives up after max_restarts within the window, naming the first failure', async (t) => {
  const { sup, live, clock } = harness('one_for_all', 2, 2, 10_000);
  await sup.start();
  live.get('c0')!.fail('first failure');
  await settle();
  clock.advance(1000);
  live.get('c1')!.fail('second');
  await settle();
  clock.advance(1000);
  live.get('c0')!.fail('third');
  await settle();
  const r = await sup.done;
  t.equal(r.ok, false);
  t.equal(r.report!.firstFailure.child, 'c0');
  t.equal(r.report!.firstFailure.exit.reason, 'first failure');
  t.equal(sup.status, 'gave_up');
});

t.test('failures outside the sliding window do not count', async (t) => {
  const { sup, live, clock } = harness('one_for_one', 1, 2, 10_000);
  await sup.start();
  for (let i = 0; i < 6; i++) {
    live.get('c0')!.fail();
    await settle();
    clock.advance(6000); // two failures at most in any 10 s window
  }
  t.equal(sup.status, 'running');
  t.equal(sup.restartCount, 6);
  await sup.close();
});

t.test('the job is done when every transient child finishes normally', async (t) => {
  const { sup, live } = harness('one_for_all', 2);
  await sup.start();
  live.get('c0')!.finish();
  live.get('c1')!.finish();
  t.same(await sup.done, { ok: true });
  await sup.close();
  await sup.close(); // twice is fine
});

t.test('a child that fails to start counts as a failure', async (t) => {
  const clock = new SimulatedClock();
  let n = 0;
  const sup = new Supervisor(
    [{ id: 'x', start: async () => { n++; throw new Error('no binary'); } }],
    { strategy: 'one_for_one', maxRestarts: 2, restartWindowMs: 1000, clock, logger: createLogger('silent') },
  );
  await sup.start();
  const r = await sup.done;
  t.equal(r.ok, false);
  t.match(r.report!.firstFailure.exit.reason, /failed to start: no binary/);
  t.equal(n, 3, 'started once plus two restarts');
});

t.test('a throwing message handler fails the mailbox, not the process', async (t) => {
  const seen: number[] = [];
  let failure: unknown;
  const mb = new Mailbox<number>(
    async (m) => {
      if (m === 2) throw new Error('bad message');
      seen.push(m);
    },
    (e) => (failure = e),
  );
  [1, 2, 3].forEach((m) => mb.post(m));
  await mb.idle();
  t.same(seen, [1]);
  t.match((failure as Error).message, 'bad message');
  t.equal(mb.isFailed, true);
  t.equal(mb.post(4), false, 'a failed mailbox refuses new messages');
});
