/**
 * The page's model of a run: every event in order, and the cluster and policy state derived from
 * them at any event (time travel). Snapshots every SNAP_EVERY events keep `stateAt(i)` cheap at
 * 100,000+ events. Pure data: no DOM, no network; it must never mutate a snapshot it handed out.
 */
export const POLICY_STATES = ['warmup', 'normal', 'vanishing-intervention', 'late-stage', 'explode-clip'];
const SNAP_EVERY = 512;

function emptyState() {
  return {
    world: 0,
    hosts: [], // [{ host, slots }]
    agents: [], // hostIndex -> joined
    jobState: 'unknown',
    jobFailed: null,
    step: 0,
    restarts: 0,
    faults: 0,
    failures: 0,
    lastCheckpoint: null,
    lastTransition: -1,
    rankPath: [], // rank -> 'warmup' | 'late-stage.vanishing' | ...
    rankLife: [], // rank -> pending | spawned | joined | failed | done | exited
    rankInc: [],
    rankHost: [],
  };
}

function copyState(s) {
  return {
    ...s,
    hosts: s.hosts,
    agents: s.agents.slice(),
    rankPath: s.rankPath.slice(),
    rankLife: s.rankLife.slice(),
    rankInc: s.rankInc.slice(),
    rankHost: s.rankHost.slice(),
  };
}

function ensureRank(s, r) {
  if (!Number.isInteger(r) || r < 0 || r > 65535) return false;
  while (s.rankPath.length <= r) {
    s.rankPath.push('warmup'); // ranks start in warmup
    s.rankLife.push('pending');
    s.rankInc.push(0);
    s.rankHost.push(null);
  }
  if (r >= s.world) s.world = r + 1;
  return true;
}

/** Applies event i to a state (in place); `model` answers questions about earlier events. */
function apply(s, e, i, model) {
  switch (e.type) {
    case 'job.started':
      // slots: a count (coordinator) or the list of slot indices (hostfile entries)
      if (Array.isArray(e.hosts)) {
        s.hosts = e.hosts.map((h) => ({ host: String(h?.host ?? h), slots: Array.isArray(h?.slots) ? h.slots.length : Number(h?.slots ?? 0) }));
      }
      if (Number.isInteger(e.world)) {
        ensureRank(s, e.world - 1);
        let r = 0;
        s.hosts.forEach((h, hi) => { for (let k = 0; k < h.slots && r < s.world; k++) s.rankHost[r++] = hi; });
      }
      break;
    case 'job.state':
      s.jobState = typeof e.state === 'string' ? e.state : JSON.stringify(e.state);
      break;
    case 'job.failed':
      s.jobState = 'failed';
      s.jobFailed = String(e.reason ?? '');
      break;
    case 'agent.joined':
      if (Number.isInteger(e.hostIndex)) s.agents[e.hostIndex] = true;
      break;
    case 'job.step':
      if (typeof e.step === 'number') s.step = Math.max(s.step, e.step);
      break;
    case 'job.restarted':
      s.restarts++;
      // every rank resumes from the last committed checkpoint, policy snapshot included
      for (let r = 0; r < s.rankPath.length; r++) s.rankPath[r] = model.pathAt(r, s.lastCheckpoint ?? 0, i);
      break;
    case 'checkpoint.committed':
      s.lastCheckpoint = e.step ?? s.lastCheckpoint;
      break;
    default:
      break;
  }
  if (typeof e.type === 'string' && e.type.startsWith('chaos.')) s.faults++;
  const r = e.rank;
  if (r === undefined || !ensureRank(s, r)) return;
  switch (e.type) {
    case 'rank.spawn':
      s.rankLife[r] = 'spawned';
      if (Number.isInteger(e.incarnation)) s.rankInc[r] = e.incarnation;
      break;
    case 'rank.joined':
      s.rankLife[r] = 'joined';
      break;
    case 'rank.policy.transition':
      s.rankPath[r] = String(e.path ?? e.to);
      s.lastTransition = i;
      if (typeof e.step === 'number') s.step = Math.max(s.step, e.step);
      break;
    case 'job.rank.failed':
      s.rankLife[r] = 'failed';
      s.failures++;
      break;
    case 'rank.done':
      s.rankLife[r] = 'done';
      break;
    case 'rank.exited':
      if (s.rankLife[r] !== 'done') s.rankLife[r] = 'exited';
      break;
    default:
      break;
  }
}

export class RunModel {
  constructor() {
    this.events = [];
    /** sequence number of events[0] (the server may have dropped older ones) */
    this.base = 0;
    this.transitions = []; // indices of rank.policy.transition events
    this.faults = []; // indices of chaos.* events
    this.failures = []; // indices of job.rank.failed events
    this.restartsAt = []; // indices of job.restarted events
    this.stepOf = []; // step known at each event
    this.types = new Map(); // type -> count
    this.perRank = []; // rank -> [{ step, path, index }] (the timeline)
    this.snaps = [emptyState()];
    this.head = emptyState(); // state after the last event
    this.maxStep = 0;
    this.version = 0;
  }

  get length() {
    return this.events.length;
  }

  append(e) {
    const i = this.events.length;
    this.events.push(e);
    apply(this.head, e, i, this);
    this.stepOf.push(this.head.step);
    this.maxStep = Math.max(this.maxStep, this.head.step);
    this.types.set(e.type, (this.types.get(e.type) ?? 0) + 1);
    if (e.type === 'rank.policy.transition' && Number.isInteger(e.rank) && e.rank >= 0 && e.rank <= 65535) {
      this.transitions.push(i);
      while (this.perRank.length <= e.rank) this.perRank.push([]);
      this.perRank[e.rank].push({ step: typeof e.step === 'number' ? e.step : this.head.step, path: String(e.path ?? e.to), index: i });
    } else if (e.type === 'job.rank.failed') this.failures.push(i);
    else if (e.type === 'job.restarted') this.restartsAt.push(i);
    else if (typeof e.type === 'string' && e.type.startsWith('chaos.')) this.faults.push(i);
    if ((i + 1) % SNAP_EVERY === 0) this.snaps.push(copyState(this.head));
    this.version++;
  }

  /** The derived state after events[0..i] (i = -1: before any event). A fresh object. */
  stateAt(i) {
    if (i >= this.events.length - 1) return copyState(this.head);
    if (i < 0) return emptyState();
    const k = Math.floor((i + 1) / SNAP_EVERY);
    const s = copyState(this.snaps[k]);
    for (let j = k * SNAP_EVERY; j <= i; j++) apply(s, this.events[j], j, this);
    return s;
  }

  /** Rank r's policy state after the decision of `step`, from transitions before event `before`. */
  pathAt(r, step, before) {
    const list = this.perRank[r] ?? [];
    for (let k = list.length - 1; k >= 0; k--) if (list[k].index < before && list[k].step <= step) return list[k].path;
    return 'warmup';
  }

  /** How many transitions happened at or before event i (binary search). */
  transitionsUpTo(i) {
    let lo = 0;
    let hi = this.transitions.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.transitions[mid] <= i) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The state (path) an event is about: a transition's target, a step's policy state, a rank's state. */
  focusOf(i, state) {
    const e = this.events[i];
    if (!e) return null;
    if (e.type === 'rank.policy.transition') return String(e.path ?? e.to);
    if (typeof e.policy_state === 'string') return e.policy_state;
    if (Number.isInteger(e.rank) && state.rankPath[e.rank]) return state.rankPath[e.rank];
    const t = state.lastTransition >= 0 ? this.events[state.lastTransition] : null;
    return t ? String(t.path ?? t.to) : null;
  }
}

/** One line of text for the log. */
export function summarize(e) {
  switch (e.type) {
    case 'rank.policy.transition':
      return `step ${e.step}: ${e.from} → ${e.path ?? e.to}${e.reason ? ` (${e.reason})` : ''}`;
    case 'job.step':
      return `step ${e.step} loss ${typeof e.loss === 'number' ? e.loss.toFixed(4) : e.loss} [${e.policy_state}]`;
    case 'job.state':
      return `${typeof e.state === 'string' ? e.state : JSON.stringify(e.state)} (attempt ${e.attempt})`;
    case 'job.rank.failed':
    case 'job.failed':
      return `${String(e.reason ?? '').split('\n')[0]}${e.detectedBy ? ` (by ${e.detectedBy})` : ''}`;
    case 'job.restarted':
      return `attempt ${e.attempt}: ${String(e.reason ?? '').split('\n')[0]}`;
    case 'checkpoint.committed':
      return `step ${e.step} ${e.path ?? ''}`;
    default: {
      const rest = { ...e };
      delete rest.type; delete rest.time; delete rest.t; delete rest.rank;
      const s = JSON.stringify(rest);
      return s.length > 160 ? s.slice(0, 160) + '…' : s;
    }
  }
}
