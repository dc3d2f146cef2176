/**
 * The Transport seam: what every control-plane component talks through. The ZeroMQ endpoints
 * implement it; the fault proxy wraps it (drop, delay, duplicate, reorder, partition).
 * A transport never throws from send(): failures are logged and the frame is counted as lost,
 * exactly like a frame lost on the network.
 */
import type { Frame } from './FrameCodec.js';
import type { BodyOf, MessageType } from './messages.js';

/** Identity of a peer as seen by the coordinator's ROUTER (`rank:3`, `agent:0`). */
export type PeerId = string;

export type FrameHandler = (frame: Frame, from: PeerId) => void;

export interface TransportStats {
  sent: number;
  received: number;
  dropped: number;
  sendErrors: number;
}

export interface Transport {
  /** Queue a message to a peer (coordinator side) or to the coordinator (peer side: `to` is ignored). */
  send<K extends MessageType>(to: PeerId, type: K, body: BodyOf<K>): void;
  onFrame(handler: FrameHandler): void;
  readonly stats: TransportStats;
  /** A wrapper that holds frames back (the chaos FaultProxy) delivers them now, within timeoutMs. */
  drain?(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const peerIdOf = (role: string, index: number): PeerId => `${role}:${index}`;
