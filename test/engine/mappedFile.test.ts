// MappedFile and the native mapFile/unmapFile: byte ranges inside a segment and across segment
// boundaries equal the file, bad ranges and offsets are refused with coded errors, a closed
// mapping hands out nothing, and a write through a view never reaches the file (private mapping:
// a rank cannot corrupt the cache the other ranks map).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MappedFile } from '../../src/engine/mappedFile.js';
import { native } from '../../src/engine/native.js';

const dir = mkdtempSync(join(tmpdir(), 'ua-mmap-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const SIZE = 300_001; // not a multiple of the segment size: the last segment is partial
const file = join(dir, 'data.bin');
const content = Uint8Array.from({ length: SIZE }, (_, i) => (i * 7919 + (i >> 8)) & 0xff);
writeFileSync(file, content);

t.test('ranges equal the file, within and across segments', async (t) => {
  const m = MappedFile.open(file, 65536);
  t.equal(m.size, SIZE);
  for (const [a, b] of [[0, 10], [65530, 65536], [65530, 65542], [65536 * 2 - 3, 65536 * 4 + 5], [SIZE - 7, SIZE], [0, SIZE], [100, 100]] as const) {
    t.same(Array.from(m.bytes(a, b)), Array.from(content.subarray(a, b)), `bytes [${a}, ${b})`);
  }
  t.throws(() => m.bytes(5, SIZE + 1), { code: 'ERR_ARG', message: /byte range \[5, 300002\) is outside the file of 300001 bytes/ });
  t.throws(() => m.bytes(9, 3), { code: 'ERR_ARG' });
  const view = m.bytes(10, 20);
  view[0] = view[0]! ^ 0xff;
  t.same(readFileSync(file).subarray(10, 11), Buffer.from([content[10]!]), 'a write through a view does not reach the file');
  m.close();
  m.close();
  t.throws(() => m.bytes(0, 1), { code: 'ERR_STATE' }, 'nothing after close');
  t.equal(view.byteLength, 0, 'views made before close are detached');
});

t.test('bad files, offsets and segment sizes', async (t) => {
  t.throws(() => MappedFile.open(join(dir, 'absent.bin')), { code: 'ERR_FILE' });
  t.throws(() => MappedFile.open(file, 1000), { code: 'ERR_ARG', message: /multiple of 65536/ });
  t.throws(() => native().mapFile(file, 3, 10), { code: 'ERR_ARG', message: /offset: expected a multiple of the page size/ });
  t.throws(() => native().mapFile(file, 0, SIZE + 1), { code: 'ERR_FILE', message: /cannot map bytes \[0, 300002\)/ });
  const empty = native().mapFile(file, 0, 0);
  t.equal(empty.byteLength, 0);
  const buf = native().mapFile(file, 0, 16);
  t.equal(native().unmapFile(buf), true);
  t.equal(native().unmapFile(buf), false, 'a second unmap reports it was already released');
  const e = join(dir, 'empty.bin');
  writeFileSync(e, '');
  const m = MappedFile.open(e);
  t.equal(m.bytes(0, 0).byteLength, 0, 'an empty file maps to nothing');
  m.close();
});
