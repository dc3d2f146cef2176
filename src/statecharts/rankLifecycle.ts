/**
 * A rank's lifecycle: joining -> joined -> rendezvous -> training -> finished, with failed and
 * aborting reachable from every live state. Pure definition; the rank runtime sends the events.
 */
import { assign, setup } from 'xstate';

export type RankLifecycleEvent =
  | { type: 'rank.joined' }
  | { type: 'rank.rendezvous' }
  | { type: 'rank.training' }
  | { type: 'rank.finished' }
  | { type: 'rank.failed'; reason: string }
  | { type: 'rank.abort'; reason: string };

export const rankLifecycleMachine = setup({
  types: {
    context: {} as { rank: number; incarnation: number; reason: string | null },
    events: {} as RankLifecycleEvent,
    input: {} as { rank: number; incarnation: number },
  },
  actions: {
    why: assign({ reason: ({ event }) => ('reason' in event ? event.reason : null) }),
  },
}).createMachine({
  id: 'rank',
  context: ({ input }) => ({ rank: input.rank, incarnation: input.incarnation, reason: null }),
  initial: 'joining',
  on: {
    'rank.failed': { target: '.failed', actions: 'why' },
    'rank.abort': { target: '.aborting', actions: 'why' },
  },
  states: {
    joining: { on: { 'rank.joined': 'joined' } },
    joined: { on: { 'rank.rendezvous': 'rendezvous' } },
    rendezvous: { on: { 'rank.training': 'training', 'rank.finished': 'finished' } },
    training: { on: { 'rank.finished': 'finished' } },
    aborting: { on: { 'rank.failed': {}, 'rank.abort': {}, 'rank.finished': 'finished' } },
    finished: { type: 'final' },
    failed: { type: 'final' },
  },
});
