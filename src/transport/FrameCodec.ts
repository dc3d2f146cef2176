/**
 * The versioned control-plane frame: msgpack of [version, type, role, sender, incarnation, seq, body].
 * decode() validates size, shape and body and returns a reason instead of throwing: a malformed,
 * oversized or unknown frame is logged and dropped by the caller, never allowed to crash a process.
 * Plain `new Packr()` on purpose: no shared structures, since frames may be lost or reordered.
 */
import { Packr } from 'msgpackr';
import { validateBody, type BodyOf, type MessageType } from './messages.js';

export const FRAME_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;

export type Role = 'coord' | 'agent' | 'rank' | 'tool';
const roles = new Set<string>(['coord', 'agent', 'rank', 'tool']);

/** A frame of one message type, its body typed by the message table. */
export interface FrameOf<K extends MessageType> {
  version: number;
  type: K;
  role: Role;
  /** rank for ranks, host index for agents, -1 for the coordinator */
  sender: number;
  /** increases every time the sender restarts: stale frames from an older life are ignored */
  incarnation: number;
  /** per-sender sequence number */
  seq: number;
  body: BodyOf<K>;
}

/** Any valid frame: a union discriminated by `type`, so `switch (f.type)` narrows `f.body`. */
export type Frame = { [K in MessageType]: FrameOf<K> }[MessageType];

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: string };

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeFrame<K extends MessageType>(f: Omit<FrameOf<K>, 'version'> & { version?: number }): Buffer {
  return packr.pack([f.version ?? FRAME_VERSION, f.type, f.role, f.sender, f.incarnation, f.seq, f.body]);
}

export function decodeFrame(buf: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): DecodeResult {
  if (buf.length > maxBytes) return { ok: false, reason: `frame of ${buf.length} bytes exceeds the limit of ${maxBytes}` };
  let raw: unknown;
  try {
    raw = packr.unpack(buf);
  } catch (e) {
    return { ok: false, reason: `not msgpack: ${(e as Error).message}` };
  }
  if (!Array.isArray(raw) || raw.length !== 7) return { ok: false, reason: 'frame must be a 7-element array' };
  const [version, type, role, sender, incarnation, seq, body] = raw as unknown[];
  if (version !== FRAME_VERSION) return { ok: false, reason: `unsupported frame version ${String(version)}` };
  if (typeof type !== 'string') return { ok: false, reason: 'frame type must be a string' };
  if (typeof role !== 'string' || !roles.has(role)) return { ok: false, reason: `unknown role ${String(role)}` };
  for (const [n, v] of [['sender', sender], ['incarnation', incarnation], ['seq', seq]] as const) {
    if (!Number.isSafeInteger(v) || (n !== 'sender' && (v as number) < 0) || (v as number) < -1) {
      return { ok: false, reason: `frame ${n} must be an integer, got ${String(v)}` };
    }
  }
  const bad = validateBody(type, body);
  if (bad) return { ok: false, reason: `${type}: ${bad}` };
  // validateBody checked the body against the table entry of `type`: this is that frame type
  const frame = { version, type, role, sender, incarnation, seq, body } as Frame;
  return { ok: true, frame };
}
