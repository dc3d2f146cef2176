// up's progress display: plain lines every N steps off a terminal, one redrawn line with a bar,
// loss, tokens/s and ETA on a terminal, notes printed above the bar.
import t from 'tap';
import { ProgressDisplay, formatDuration } from '../../src/cli/progress.js';

t.test('plain lines when not a terminal', async (t) => {
  let out = '';
  let now = 0;
  const p = new ProgressDisplay({ write: (s) => (out += s), tty: false, total: 10, everySteps: 5, now: () => now });
  for (let s = 1; s <= 10; s++) {
    now += 500;
    p.step({ step: s, loss: 1 / s, tokens: 100 });
  }
  const lines = out.trim().split('\n');
  t.same(lines.map((l) => l.split('  ')[0]), ['step 1/10', 'step 5/10', 'step 10/10']);
  t.match(lines[1]!, /loss 0\.2000 +tokens\/s 200 +ETA 0:03/, 'tokens/s from the step interval; ETA = 5 steps x 0.5 s');
  t.notMatch(out, /\r/);
});

t.test('one redrawn line on a terminal; notes above it', async (t) => {
  let out = '';
  let now = 0;
  const p = new ProgressDisplay({ write: (s) => (out += s), tty: true, total: 4, everySteps: 100, now: () => now });
  now = 1000;
  p.step({ step: 1, loss: 2, tokens: 10 });
  now = 2000;
  p.step({ step: 2, loss: 1, tokens: 10 });
  p.note('rank 1 failed');
  p.end();
  t.match(out, /\r\x1b\[Kstep 2\/4  \[#{10}\.{10}\]  loss 1\.0000  tokens\/s 10\.0  ETA 0:02/);
  t.match(out, /\r\x1b\[Krank 1 failed\nstep 2\/4/);
  t.ok(out.endsWith('\n'));
  t.equal(formatDuration(3725), '1:02:05');
});
