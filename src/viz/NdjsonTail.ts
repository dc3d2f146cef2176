/**
 * Reads a newline-delimited JSON file (events.ndjson, metrics.jsonl) incrementally: each `read()`
 * returns the complete lines appended since the previous call, streamed in chunks so a run of
 * millions of lines never sits in memory as one string. A partial last line (a writer mid-append)
 * is kept until its newline arrives. Never writes to the file and never throws for a missing one.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

export class NdjsonTail {
  private offset = 0;
  private partial = '';
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Complete, non-empty lines appended since the last call (none if the file does not exist). */
  read(): Promise<string[]> {
    // serialized: two overlapping reads would return the same bytes twice
    const next = this.chain.then(() => this.readOnce());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async readOnce(): Promise<string[]> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch {
      return [];
    }
    if (size < this.offset) {
      // truncated or replaced: start over rather than read from the middle of a line
      this.offset = 0;
      this.partial = '';
    }
    if (size === this.offset) return [];
    const lines: string[] = [];
    const end = size - 1;
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(this.path, { start: this.offset, end, encoding: 'utf8', highWaterMark: 1 << 20 });
      s.on('data', (chunk) => {
        const text = this.partial + (chunk as string);
        const parts = text.split('\n');
        this.partial = parts.pop()!;
        for (const p of parts) {
          const line = p.trim();
          if (line) lines.push(line);
        }
      });
      s.on('end', resolve);
      s.on('error', reject);
    });
    this.offset = size;
    return lines;
  }
}
