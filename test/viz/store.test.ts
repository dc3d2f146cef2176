/**
 * The visualizer's event store (sequence numbers, bounded capacity, listeners) and the NDJSON
 * tailer (partial lines, appends, truncation, missing files), without a server.
 */
import t from 'tap';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventStore } from '../../src/viz/EventStore.js';
import { NdjsonTail } from '../../src/viz/NdjsonTail.js';

t.test('EventStore numbers events, slices by sequence and drops the oldest past capacity', async (t) => {
  const s = new EventStore(32);
  const seen: number[] = [];
  const off = s.subscribe((seq) => seen.push(seq));
  s.subscribe(() => {
    throw new Error('a broken listener');
  });
  for (let k = 0; k < 100; k++) t.equal(s.append(`{"k":${k}}`), k);
  t.same(seen, [...Array(100).keys()], 'every listener call, in order, despite a throwing listener');
  t.ok(s.first > 0 && s.next - s.first <= 32, `keeps at most 32 (first ${s.first}, next ${s.next})`);
  const { first, items } = s.slice(0);
  t.equal(first, s.first, 'a slice from before the oldest starts at the oldest');
  t.equal(items[0], `{"k":${s.first}}`);
  t.same(s.slice(98).items, ['{"k":98}', '{"k":99}']);
  t.same(s.slice(500).items, []);
  off();
  s.append('{}');
  t.equal(seen.length, 100, 'an unsubscribed listener hears nothing');
  t.equal(s.listenerCount, 1);
});

t.test('NdjsonTail returns complete lines once, waits for a partial line and survives truncation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'viz-tail-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.ndjson');
  const tail = new NdjsonTail(path);
  t.same(await tail.read(), [], 'a missing file has no lines');
  await writeFile(path, 'a\nb\n\n  \nc');
  t.same(await tail.read(), ['a', 'b'], 'blank lines skipped, the partial last line held back');
  await appendFile(path, 'd\ne\n');
  t.same(await tail.read(), ['cd', 'e'], 'the partial line completes');
  t.same(await tail.read(), [], 'nothing new');
  // concurrent reads never return the same bytes twice
  await appendFile(path, 'f\n');
  const [x, y] = await Promise.all([tail.read(), tail.read()]);
  t.same([...x, ...y], ['f']);
  await writeFile(path, 'new\n');
  t.same(await tail.read(), ['new'], 'a truncated (rewritten) file is read from its start');
  // a large file arrives in several chunks: lines that straddle chunks stay whole
  const big = Array.from({ length: 50_000 }, (_, i) => JSON.stringify({ type: 'job.step', step: i, pad: 'x'.repeat(i % 50) }));
  await appendFile(path, big.join('\n') + '\n');
  const got = await tail.read();
  t.equal(got.length, big.length);
  t.same([got[0], got[12_345], got.at(-1)], [big[0], big[12_345], big.at(-1)]);
});
