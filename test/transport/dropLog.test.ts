// Dropped frames are logged at a bounded rate: the first of an interval with its reason, the rest
// of the interval as one count per peer.
import t from 'tap';
import { DropLog } from '../../src/transport/DropLog.js';
import { createLogger, type LogRecord } from '../../src/util/Logger.js';

t.test('36,000 bad frames in 2 s give a handful of lines, with the count', async (t) => {
  const logs: LogRecord[] = [];
  let now = 0;
  const d = new DropLog({ logger: createLogger('debug', (r) => logs.push(r)), what: 'dropped a control frame', intervalMs: 1000, now: () => now });
  for (let i = 0; i < 36_000; i++) {
    now = Math.floor(i / 18); // 2000 ms in all
    d.drop('rank:1', `bad frame ${i}`);
  }
  d.drop('rank:0', 'another peer');
  d.close();
  t.ok(logs.length <= 6, `${logs.length} lines`);
  t.equal(d.total, 36_001);
  const counted = logs.reduce((n, l) => n + (l.msg.match(/: (\d+) more from/) ? Number(/: (\d+) more/.exec(l.msg)![1]) : 1), 0);
  t.equal(counted, 36_001, 'every drop is in a line or a count');
  t.ok(logs.some((l) => l.msg === 'dropped a control frame' && l.fields?.from === 'rank:0'), 'another peer has its own line');
});

t.test('many peers are counted together beyond the limit', async (t) => {
  const logs: LogRecord[] = [];
  const d = new DropLog({ logger: createLogger('debug', (r) => logs.push(r)), what: 'x', intervalMs: 10_000, maxPeers: 2, now: () => 0 });
  for (let i = 0; i < 100; i++) d.drop(`peer${i}`, 'r');
  d.close();
  t.ok(logs.length <= 4, `${logs.length} lines for 100 peers`);
});
