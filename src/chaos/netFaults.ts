/**
 * The network faults of a plan as fault-proxy rules, for both sides (the rank's proxy in
 * RankChaos.ts, the coordinator's in the harness): which plan kinds are network faults, which
 * faults run for the whole job (no trigger), and the rule a fault becomes: from the start for a
 * whole-run fault, from the moment it fires otherwise (a partition always drops everything, and
 * always ends after its duration). Pure.
 */
import type { Fault } from './FaultPlan.js';
import type { NetFaultKind, NetRule } from './FaultProxy.js';
import type { PeerId } from '../transport/Transport.js';

const NET_KIND: Partial<Record<Fault['kind'], NetFaultKind>> = { net_drop: 'drop', net_delay: 'delay', net_duplicate: 'duplicate', net_reorder: 'reorder', partition: 'partition' };

/** The proxy's kind for a network fault; undefined for every other fault. */
export const netKindOf = (f: Fault): NetFaultKind | undefined => NET_KIND[f.kind];

/** A fault with no trigger: it applies for the whole job. */
export const isUntriggered = (f: Fault): boolean => f.trigger.atStep === undefined && f.trigger.atTimeS === undefined && f.trigger.probability === undefined;

/** The rule of a whole-run network fault (for its duration, when it has one). */
export function wholeRunRule(f: Fault, kind: NetFaultKind, peers: PeerId[] | null): NetRule {
  return { kind, p: f.p, delayMs: f.delayMs, types: f.types, peers, fromMs: 0, toMs: f.durationS > 0 && kind !== 'partition' ? f.durationS * 1000 : Infinity };
}

/** The rule of a network fault that fires at `nowMs` (the proxy's clock). */
export function firedRule(f: Fault, kind: NetFaultKind, peers: PeerId[] | null, nowMs: number): NetRule {
  const to = kind === 'partition' || f.durationS > 0 ? nowMs + f.durationS * 1000 : Infinity;
  return { kind, p: kind === 'partition' ? 1 : f.p, delayMs: f.delayMs, types: f.types, peers, fromMs: nowMs, toMs: to };
}
