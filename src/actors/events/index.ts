/** Job events and the log that records them. Re-exports only. */
export { EventLog, type EventListener } from './EventLog.js';
export { jobEvents, isEvent, firstEvent, eventsOf, type JobEvent, type JobEventBody, type JobEventType, type JobEventFields, type EventOf, type EventStamp, type HostSlots, type RankFailure } from './jobEvents.js';
