// up's progress display: plain lines every N steps off a terminal, one redrawn line with a bar,
// loss, tokens/s and ETA on a terminal, notes and the output of other processes printed above the
// bar (never glued to it); evaluation lines; the result lines of a finished run.
import t from 'tap';
import { join } from 'node:path';
import { ProgressDisplay, evalLine, formatDuration, logSink } from '../../src/cli/progress.js';
import { resultLines } from '../../src/cli/resultLines.js';

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

t.test('on a terminal, output of other processes clears the bar and redraws it, whole lines only', async (t) => {
  const seq: [string, string][] = [];
  const p = new ProgressDisplay({ write: (s) => seq.push(['out', s]), writeErr: (s) => seq.push(['err', s]), tty: true, total: 4, everySteps: 100, now: () => 0 });
  p.step({ step: 1, loss: 2, tokens: 10 });
  const bar = seq[seq.length - 1]![1].replace('\r\x1b[K', '');
  seq.length = 0;
  p.output('stderr', Buffer.from('2026 info [rank0] saved checkpoint-1\n2026 info [rank1] par'));
  t.same(seq, [['out', '\r\x1b[K'], ['err', '2026 info [rank0] saved checkpoint-1\n'], ['out', bar]], 'cleared, the whole line, then the bar again');
  seq.length = 0;
  p.output('stderr', Buffer.from('tial line\n'));
  t.same(seq, [['out', '\r\x1b[K'], ['err', '2026 info [rank1] partial line\n'], ['out', bar]], 'a line split over chunks comes out whole');
  seq.length = 0;
  // a multi-byte character split across chunks is not broken
  const euro = Buffer.from('cost €5\n');
  p.output('stdout', euro.subarray(0, 6));
  p.output('stdout', euro.subarray(6));
  t.same(seq.map((x) => x[1]).join(''), `\r\x1b[Kcost €5\n${bar}`);
  seq.length = 0;
  p.output('stderr', 'unterminated');
  p.end();
  t.same(seq, [['out', '\n'], ['err', 'unterminated\n']], 'end() closes the bar line and prints what is left');
});

t.test('off a terminal, output passes through as it comes, and log lines go to stderr', async (t) => {
  let out = '';
  let err = '';
  const p = new ProgressDisplay({ write: (s) => (out += s), writeErr: (s) => (err += s), tty: false, total: 2, everySteps: 1, now: () => 0 });
  p.output('stderr', Buffer.from('partial'));
  t.equal(err, 'partial');
  logSink(p)({ level: 'warn', scope: 'up', msg: 'slow disk', time: 'T', fields: { ms: 5 } });
  t.equal(err, 'partialT warn  [up] slow disk {"ms":5}\n');
  p.step({ step: 1, loss: 1, tokens: 1 });
  t.equal(out.split('\n').filter(Boolean).length, 1, 'one line per logging step');
});

t.test('an evaluation prints its eval figures in one line', async (t) => {
  const line = evalLine({ step: 20, restarts: 0, eval_loss: 1.234567891, eval_accuracy: 0.5, epoch: 0.5, eval_runtime: 2.345, eval_samples_per_second: 10, eval_steps_per_second: 3 });
  t.equal(line, 'eval after step 20: eval_loss 1.2346, eval_accuracy 0.5 (2.3 s)');
});

t.test('the result of a run: a built-in task\'s accuracy with chance and what it measures; do_eval figures', async (t) => {
  const dir = t.testdir({
    'eval_results.json': JSON.stringify({
      task: 'builtin:passkey', measures: 'the share of sequences whose passkey is recalled', chance: 0.1, step: 400,
      before: { answers: 64, answersCorrect: 6, answerAccuracy: 6 / 64 }, after: { answers: 64, answersCorrect: 21, answerAccuracy: 21 / 64 }, eval_loss: 1.25, eval_runtime: 3,
    }),
  });
  const lines = resultLines(dir);
  t.equal(lines[0], 'result:      accuracy 32.8% (21/64), chance 10%; before training 9.4% (6/64)');
  t.equal(lines[1], '             builtin:passkey: the share of sequences whose passkey is recalled');
  t.match(lines[2], /^eval: +eval_loss 1\.25  \(/);
  t.same(resultLines(join(dir, 'nothing')), [], 'no results file: no lines');
});
