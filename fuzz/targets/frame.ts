/**
 * Fuzz target `frame`: the control-plane frame decoder (transport/FrameCodec.ts and the message
 * table of transport/messages.ts) on arbitrary bytes, as a ROUTER socket receives them from
 * anyone who can reach it. The decoder's documented answer to bad input is `{ ok: false, reason }`;
 * it must never throw. A frame it accepts must carry a body of its type and survive the round
 * trip through encodeFrame (what a receiver accepts, a sender can send).
 */
import { decodeFrame, encodeFrame } from '../../src/transport/FrameCodec.js';
import { messageTypes, validateBody } from '../../src/transport/messages.js';
import { check } from './harness.js';

export function fuzz(data: Buffer): void {
  const r = decodeFrame(data);
  if (!r.ok) {
    check(typeof r.reason === 'string' && r.reason.length > 0, 'a refused frame has no reason');
    return;
  }
  const f = r.frame;
  check(messageTypes.has(f.type), `accepted unknown type ${String(f.type)}`);
  check(validateBody(f.type, f.body) === null, `accepted a ${f.type} whose body does not validate`);
  const again = decodeFrame(encodeFrame(f));
  check(again.ok, `an accepted ${f.type} frame does not decode after re-encoding: ${again.ok ? '' : again.reason}`);
}
