/**
 * The visualizer's ordered record of job events, kept as their JSON text with a sequence number
 * (the server-sent-events id a reconnecting browser resumes from). Bounded: past `capacity` the
 * oldest events are dropped and `first` moves on. Never parses an event twice and never lets a
 * listener's failure reach the writer.
 */
export type StoreListener = (seq: number, json: string) => void;

export class EventStore {
  private items: string[] = [];
  private base = 0;
  private listeners = new Set<StoreListener>();

  constructor(private readonly capacity = 1_000_000) {}

  /** Sequence number of the oldest event still held. */
  get first(): number {
    return this.base;
  }

  /** Sequence number the next event will get (= events ever appended). */
  get next(): number {
    return this.base + this.items.length;
  }

  append(json: string): number {
    const seq = this.next;
    this.items.push(json);
    if (this.items.length > this.capacity) {
      // drop in blocks so a full store does not shift its whole array on every event
      const drop = Math.max(1, this.capacity >> 4);
      this.items.splice(0, drop);
      this.base += drop;
    }
    for (const l of this.listeners) {
      try {
        l(seq, json);
      } catch {
        /* one broken browser connection must not stop the others */
      }
    }
    return seq;
  }

  /** The JSON texts of events [from, next), from clamped to `first`. */
  slice(from: number, to = this.next): { first: number; items: string[] } {
    const a = Math.max(from, this.base);
    const b = Math.min(Math.max(to, a), this.next);
    return { first: a, items: this.items.slice(a - this.base, b - this.base) };
  }

  subscribe(l: StoreListener): () => void {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}
