// A rank's reports through a coordinator pause: step reports are kept until the coordinator's
// heartbeat says their step is aggregated and replayed on request; a final report is resent
// until the coordinator acknowledges it, and gives up after its bound or when the job aborts.
import t from 'tap';
import { ReportChannel } from '../../src/actors/rank/ReportChannel.js';
import type { BodyOf, MessageType } from '../../src/transport/messages.js';
import type { FrameHandler, Transport } from '../../src/transport/Transport.js';

class Recorder implements Transport {
  sent: { type: string; body: unknown }[] = [];
  readonly stats = { sent: 0, received: 0, dropped: 0, sendErrors: 0 };
  send<K extends MessageType>(_to: string, type: K, body: BodyOf<K>): void {
    this.sent.push({ type, body });
  }
  onFrame(_h: FrameHandler): void {}
  async close(): Promise<void> {}
}

const report = (step: number) => ({ step, loss: 1 / step, tokens: 1, planDigest: 'd', policyState: 'normal' });

t.test('step reports are kept until aggregated, and replayed', async (t) => {
  const link = new Recorder();
  const ch = new ReportChannel(link);
  for (let s = 1; s <= 5; s++) ch.step(report(s));
  t.equal(link.sent.length, 5, 'each report is sent at once');
  ch.aggregated(3);
  t.equal(ch.unacknowledged, 2, 'steps 1..3 aggregated: 4 and 5 kept');
  link.sent.length = 0;
  t.equal(ch.replay(), 2);
  t.same(link.sent.map((f) => (f.body as { step: number }).step), [4, 5], 'the unaggregated ones, in order');
  ch.aggregated(10);
  t.equal(ch.replay(), 0);
});

t.test('the replay buffer is bounded (oldest dropped first)', async (t) => {
  const ch = new ReportChannel(new Recorder(), 3);
  for (let s = 1; s <= 5; s++) ch.step(report(s));
  t.equal(ch.unacknowledged, 3);
  t.equal(ch.overflowed, 2);
});

t.test('a final report is resent until acknowledged', async (t) => {
  const link = new Recorder();
  const ch = new ReportChannel(link);
  ch.step(report(7));
  const done = ch.final('rank.done', { step: 7 }, { timeoutMs: 5000, resendMs: 30 });
  await new Promise((r) => setTimeout(r, 100));
  const resent = link.sent.filter((f) => f.type === 'rank.done').length;
  t.ok(resent >= 2, `resent while unacknowledged (${resent} sends)`);
  t.ok(link.sent.filter((f) => f.type === 'rank.step.done').length >= 2, 'the unaggregated step goes with it');
  ch.acked('rank.done');
  t.equal(await done, true, 'the receipt ends the wait');
  const after = link.sent.length;
  await new Promise((r) => setTimeout(r, 80));
  t.equal(link.sent.length, after, 'no more resends after the receipt');
});

t.test('a final report gives up after its bound, or when the job aborts', async (t) => {
  const ch = new ReportChannel(new Recorder());
  t.equal(await ch.final('rank.failed', { reason: 'x' }, { timeoutMs: 50, resendMs: 20 }), false, 'no receipt within the bound');
  const abort = new AbortController();
  const waiting = ch.final('rank.done', { step: 1 }, { timeoutMs: 10_000, resendMs: 1000, signal: abort.signal });
  abort.abort();
  t.equal(await waiting, false, 'the abort ends the wait');
  const pre = new AbortController();
  pre.abort();
  t.equal(await ch.final('rank.done', { step: 1 }, { timeoutMs: 10_000, resendMs: 1000, signal: pre.signal }), false, 'already aborted: no wait');
});
