// HeartbeatMonitor when the monitoring process itself stalls: a check timer that fires far too
// late (GC, a blocked loop, CPU starvation) must not blame peers whose heartbeats are still queued
// behind it; a peer that is really silent is still declared dead one tick later.
import t from 'tap';
import type { Clock } from '../../src/util/Clock.js';
import { HeartbeatMonitor } from '../../src/transport/HeartbeatMonitor.js';

/** A clock whose single interval timer the test fires by hand, as late as it likes. */
function manualClock() {
  let now = 0;
  let fn: (() => void) | null = null;
  const clock: Clock = {
    now: () => now,
    setTimeout: () => ({ cancel() {} }),
    setInterval: (f) => {
      fn = f;
      return { cancel: () => (fn = null) };
    },
  };
  return { clock, fire: (afterMs: number) => ((now += afterMs), fn?.()), advance: (ms: number) => (now += ms) };
}

t.test('a stalled check tick defers verdicts to the next tick', async (t) => {
  const c = manualClock();
  const dead: string[] = [];
  const m = new HeartbeatMonitor({ clock: c.clock, intervalMs: 100, missLimit: 3, stepTimeoutMs: 0, onDead: (p) => dead.push(p), onHung: () => {} });
  m.watch('rank:0');
  m.watch('rank:1');
  for (let i = 0; i < 8; i++) {
    c.fire(25);
    m.beat('rank:0', 0, false);
    m.beat('rank:1', 0, false);
  }
  // the process freezes for 600 ms; both peers kept beating but nothing was read yet
  c.fire(600);
  t.same(dead, [], 'no verdict from a tick that fired 600 ms late');
  t.equal(m.stalls, 1);
  // the queued heartbeat of rank 0 is read now; rank 1 really went silent
  m.beat('rank:0', 0, false);
  c.fire(25);
  t.same(dead, ['rank:1'], 'the silent peer is declared dead on the next tick (one tick of extra latency)');
  m.stop();
});

t.test('on-time ticks still detect a silent peer within the bound', async (t) => {
  const c = manualClock();
  const dead: { peer: string; ms: number }[] = [];
  const m = new HeartbeatMonitor({ clock: c.clock, intervalMs: 100, missLimit: 3, stepTimeoutMs: 0, onDead: (peer, ms) => dead.push({ peer, ms }), onHung: () => {} });
  m.watch('agent:0');
  for (let i = 0; i < 20 && dead.length === 0; i++) c.fire(25);
  t.equal(dead.length, 1);
  t.ok(dead[0]!.ms > 300 && dead[0]!.ms <= 325, `declared after ${dead[0]!.ms} ms (bound 300 ms + one 25 ms tick)`);
  t.equal(m.stalls, 0);
  m.stop();
});
