import t from 'tap';
import { SimulatedClock } from '../../src/util/Clock.js';
import { HeartbeatMonitor } from '../../src/transport/HeartbeatMonitor.js';

function setup(stepTimeoutMs = 0) {
  const clock = new SimulatedClock();
  const dead: [string, number][] = [];
  const hung: [string, number][] = [];
  const m = new HeartbeatMonitor({
    clock,
    intervalMs: 1000,
    missLimit: 3,
    stepTimeoutMs,
    onDead: (p, ms) => dead.push([p, ms]),
    onHung: (p, s) => hung.push([p, s]),
  });
  return { clock, dead, hung, m };
}

t.test('a peer is dead after 3 missed heartbeats, within a quarter interval', async (t) => {
  const { clock, dead, m } = setup();
  m.watch('rank:0');
  m.watch('rank:1');
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    m.beat('rank:0', i);
    if (i < 2) m.beat('rank:1', i);
  }
  t.same(dead.map((d) => d[0]), ['rank:1'], 'only the silent peer');
  t.ok(dead[0]![1] > 3000 && dead[0]![1] <= 3250, `declared after ${dead[0]![1]} ms of silence`);
  clock.advance(10_000);
  t.equal(dead.filter((d) => d[0] === 'rank:1').length, 1, 'reported once');
  m.stop();
});

t.test('a hang: heartbeats arrive but the step does not advance', async (t) => {
  const { clock, hung, dead, m } = setup(5000);
  m.watch('rank:0');
  for (let i = 0; i < 4; i++) {
    clock.advance(1000);
    m.beat('rank:0', i);
  }
  for (let i = 0; i < 8; i++) {
    clock.advance(1000);
    m.beat('rank:0', 3);
  }
  t.same(hung, [['rank:0', 3]]);
  t.same(dead, []);
  m.stop();
});

t.test('an idle peer (not busy) is not hung', async (t) => {
  const { clock, hung, m } = setup(2000);
  m.watch('agent:0');
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    m.beat('agent:0', 0, false);
  }
  t.same(hung, []);
  m.forget('agent:0');
});
