// The fault proxy over a fake transport: drop, delay, duplicate, reorder and partition, in both
// directions, only while a rule is active, deterministically for a seed; close() cancels timers.
import t from 'tap';
import type { Frame } from '../../src/transport/FrameCodec.js';
import type { FrameHandler, PeerId, Transport, TransportStats } from '../../src/transport/Transport.js';
import type { MessageType } from '../../src/transport/messages.js';
import { FaultProxy, type NetRule } from '../../src/chaos/FaultProxy.js';

class FakeTransport implements Transport {
  sent: { to: PeerId; type: string; n: number }[] = [];
  stats: TransportStats = { sent: 0, received: 0, dropped: 0, sendErrors: 0 };
  private handlers: FrameHandler[] = [];
  send(to: PeerId, type: MessageType, body: Record<string, unknown>): void {
    this.sent.push({ to, type, n: body.n as number });
  }
  onFrame(h: FrameHandler): void {
    this.handlers.push(h);
  }
  deliver(type: MessageType, n: number, from: PeerId = 'rank:1'): void {
    const f = { version: 1, type, role: 'rank', sender: 1, incarnation: 0, seq: n, body: { n } } as unknown as Frame;
    for (const h of this.handlers) h(f, from);
  }
  async close(): Promise<void> {}
}

const rule = (r: Partial<NetRule>): NetRule => ({ kind: 'drop', p: 1, delayMs: 0, types: null, peers: null, fromMs: 0, toMs: Infinity, ...r });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(rules: NetRule[], seed = 1) {
  const inner = new FakeTransport();
  let now = 0;
  const proxy = new FaultProxy(inner, { seed, now: () => now, rules });
  const got: number[] = [];
  proxy.onFrame((f) => got.push(f.body.n as number));
  return { inner, proxy, got, setNow: (v: number) => (now = v) };
}

t.test('drop with p=1 loses every matching frame both ways; other types pass', async (t) => {
  const { inner, proxy, got } = setup([rule({ kind: 'drop', types: ['peer.heartbeat'] })]);
  proxy.send('coord', 'peer.heartbeat', { n: 1 });
  proxy.send('coord', 'rank.done', { n: 2 });
  inner.deliver('peer.heartbeat', 3);
  inner.deliver('kv.reply', 4);
  t.same(inner.sent.map((s) => s.n), [2]);
  t.same(got, [4]);
  t.equal(proxy.faults.dropped, 2);
});

t.test('drop with p=0.3 loses about 30%, the same frames for the same seed', async (t) => {
  const run = (seed: number) => {
    const { inner, proxy } = setup([rule({ kind: 'drop', p: 0.3 })], seed);
    for (let i = 0; i < 2000; i++) proxy.send('coord', 'peer.heartbeat', { n: i });
    return inner.sent.map((s) => s.n);
  };
  const a = run(5);
  const rate = 1 - a.length / 2000;
  t.ok(Math.abs(rate - 0.3) < 0.04, `drop rate ${rate.toFixed(3)} within 0.04 of 0.3 (diff ${Math.abs(rate - 0.3).toFixed(3)})`);
  t.same(run(5), a, 'deterministic for a seed');
});

t.test('delay holds frames for delayMs; duplicate delivers twice', async (t) => {
  const { inner, proxy, got } = setup([rule({ kind: 'delay', delayMs: 40, types: ['rank.done'] }), rule({ kind: 'duplicate', types: ['kv.reply'] })]);
  proxy.send('coord', 'rank.done', { n: 1 });
  t.same(inner.sent, [], 'not sent yet');
  await sleep(80);
  t.same(inner.sent.map((s) => s.n), [1], 'sent after the delay');
  inner.deliver('kv.reply', 7);
  t.same(got, [7, 7], 'delivered twice');
  t.equal(proxy.faults.duplicated, 1);
});

t.test('reorder lets the next frame overtake the held one', async (t) => {
  const { inner, proxy } = setup([rule({ kind: 'reorder', types: ['rank.step.done'] })]);
  proxy.send('coord', 'rank.step.done', { n: 1 });
  proxy.send('coord', 'peer.heartbeat', { n: 2 });
  t.same(inner.sent.map((s) => s.n), [2, 1], 'the second frame went first');
  proxy.send('coord', 'rank.step.done', { n: 3 });
  await sleep(250);
  t.same(inner.sent.map((s) => s.n), [2, 1, 3], 'a held frame with no successor goes after 200 ms');
});

t.test('a partition drops everything to and from its peers during its window only', async (t) => {
  const { inner, proxy, got, setNow } = setup([rule({ kind: 'partition', peers: ['rank:1'], fromMs: 100, toMs: 200 })]);
  proxy.send('rank:1', 'peer.heartbeat', { n: 1 });
  setNow(150);
  proxy.send('rank:1', 'peer.heartbeat', { n: 2 });
  proxy.send('rank:0', 'peer.heartbeat', { n: 3 });
  inner.deliver('peer.heartbeat', 4, 'rank:1');
  inner.deliver('peer.heartbeat', 5, 'rank:0');
  setNow(250);
  proxy.send('rank:1', 'peer.heartbeat', { n: 6 });
  inner.deliver('peer.heartbeat', 7, 'rank:1');
  t.same(inner.sent.map((s) => s.n), [1, 3, 6]);
  t.same(got, [5, 7]);
  proxy.partitionNow(1000);
  proxy.send('rank:1', 'peer.heartbeat', { n: 8 });
  t.same(inner.sent.map((s) => s.n), [1, 3, 6], 'partitionNow applies at once (every peer)');
});

t.test('close() cancels delayed frames; nothing is sent afterwards', async (t) => {
  const { inner, proxy } = setup([rule({ kind: 'delay', delayMs: 30 })]);
  proxy.send('coord', 'rank.done', { n: 1 });
  await proxy.close();
  await proxy.close();
  proxy.send('coord', 'rank.done', { n: 2 });
  await sleep(60);
  t.same(inner.sent, []);
});

t.test('drain() lets delayed and held frames out before a clean exit', async (t) => {
  const { inner, proxy } = setup([rule({ kind: 'delay', delayMs: 30, types: ['rank.done'] }), rule({ kind: 'reorder', types: ['rank.step.done'] })]);
  proxy.send('coord', 'rank.step.done', { n: 1 });
  proxy.send('coord', 'rank.done', { n: 2 });
  t.same(inner.sent.map((s) => s.n), [], 'one held, one delayed');
  await proxy.drain(500);
  t.same(inner.sent.map((s) => s.n).sort(), [1, 2], 'both went out');
  await proxy.close();
});
