import t from 'tap';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { decodeFrame, encodeFrame } from '../../src/transport/FrameCodec.js';

const good = { type: 'peer.heartbeat' as const, role: 'rank' as const, sender: 3, incarnation: 1, seq: 7, body: { step: 12, phase: 'normal' } };

t.test('a frame round-trips', async (t) => {
  const r = decodeFrame(encodeFrame(good));
  t.ok(r.ok);
  if (r.ok) t.same(r.frame, { version: 1, ...good });
});

t.test('malformed, oversized, unknown and mistyped frames are refused with a reason', async (t) => {
  const p = new Packr();
  const cases: [string, Uint8Array, RegExp][] = [
    ['garbage', Buffer.from([0xc1, 0xff, 0x00]), /not msgpack|7-element/],
    ['not an array', p.pack({ a: 1 }), /7-element array/],
    ['wrong version', p.pack([2, 'peer.heartbeat', 'rank', 0, 0, 0, { step: 1, phase: 'x' }]), /unsupported frame version 2/],
    ['unknown type', p.pack([1, 'peer.explode', 'rank', 0, 0, 0, {}]), /unknown message type/],
    ['unknown role', p.pack([1, 'peer.heartbeat', 'mallory', 0, 0, 0, { step: 1, phase: 'x' }]), /unknown role/],
    ['negative seq', p.pack([1, 'peer.heartbeat', 'rank', 0, 0, -5, { step: 1, phase: 'x' }]), /seq must be an integer/],
    ['missing field', p.pack([1, 'peer.heartbeat', 'rank', 0, 0, 0, { phase: 'x' }]), /missing field 'step'/],
    ['wrong field type', p.pack([1, 'peer.heartbeat', 'rank', 0, 0, 0, { step: 'one', phase: 'x' }]), /'step' must be an integer/],
    ['string too long', p.pack([1, 'peer.heartbeat', 'rank', 0, 0, 0, { step: 1, phase: 'x'.repeat(100) }]), /longer than 64/],
  ];
  for (const [name, buf, re] of cases) {
    const r = decodeFrame(buf);
    t.notOk(r.ok, name);
    if (!r.ok) t.match(r.reason, re, `${name}: ${r.reason}`);
  }
  const big = decodeFrame(encodeFrame(good), 4);
  t.notOk(big.ok, 'oversized');
  if (!big.ok) t.match(big.reason, /exceeds the limit of 4/);
});

t.test('property: no byte string makes the decoder throw', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      decodeFrame(bytes);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.anything(), (v) => {
      decodeFrame(new Packr().pack([1, 'rank.step.done', 'rank', 0, 0, 0, v]));
    }),
    { numRuns: 1000 },
  );
  t.pass('3000 random frames decoded without throwing');
});
