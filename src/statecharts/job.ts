/**
 * The job statechart the coordinator runs:
 *   rendezvous -> running -> (recovering -> running)* -> succeeded | failed
 * `recovering` is a one_for_all restart of every rank from the last committed checkpoint;
 * giving up (restart intensity exceeded), a replica divergence or an interrupt ends in `failed`.
 * Pure definition; the coordinator sends the events and reads `value` for events.ndjson.
 */
import { assign, setup } from 'xstate';

export type JobChartEvent =
  | { type: 'job.agents.joined' }
  | { type: 'job.ranks.ready' }
  | { type: 'job.rank.failed'; rank: number; reason: string }
  | { type: 'job.restarted'; attempt: number }
  | { type: 'job.completed' }
  | { type: 'job.gave_up'; reason: string }
  | { type: 'job.diverged'; reason: string }
  | { type: 'job.interrupted' }
  | { type: 'job.error'; reason: string };

export interface JobContext {
  attempt: number;
  failures: { rank: number; reason: string }[];
  reason: string | null;
}

export const jobMachine = setup({
  types: { context: {} as JobContext, events: {} as JobChartEvent },
  actions: {
    recordFailure: assign({
      failures: ({ context, event }) =>
        event.type === 'job.rank.failed' ? [...context.failures, { rank: event.rank, reason: event.reason }] : context.failures,
    }),
    setReason: assign({ reason: ({ event }) => ('reason' in event ? event.reason : event.type) }),
    countAttempt: assign({ attempt: ({ event, context }) => (event.type === 'job.restarted' ? event.attempt : context.attempt) }),
  },
}).createMachine({
  id: 'job',
  context: { attempt: 0, failures: [], reason: null },
  initial: 'rendezvous',
  on: {
    'job.interrupted': { target: '.failed', actions: 'setReason' },
    'job.error': { target: '.failed', actions: 'setReason' },
  },
  states: {
    rendezvous: {
      on: { 'job.agents.joined': 'starting', 'job.gave_up': { target: 'failed', actions: 'setReason' } },
    },
    starting: {
      on: {
        'job.ranks.ready': 'running',
        'job.rank.failed': { target: 'recovering', actions: 'recordFailure' },
        'job.completed': 'succeeded',
        'job.gave_up': { target: 'failed', actions: 'setReason' },
      },
    },
    running: {
      on: {
        'job.rank.failed': { target: 'recovering', actions: 'recordFailure' },
        'job.completed': 'succeeded',
        'job.diverged': { target: 'failed', actions: 'setReason' },
        'job.gave_up': { target: 'failed', actions: 'setReason' },
      },
    },
    recovering: {
      on: {
        'job.restarted': { target: 'starting', actions: 'countAttempt' },
        'job.rank.failed': { actions: 'recordFailure' },
        'job.gave_up': { target: 'failed', actions: 'setReason' },
      },
    },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
  },
});
