// Warm standby ranks: the assignment line (its shape refused by name), the pool's hand-over to a
// waiting process, and its clean-up; against real processes.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { ProcessChild } from '../../src/actors/ProcessChild.js';
import { StandbyRanks } from '../../src/actors/StandbyRanks.js';
import { parseStandbyAssignment, readStandbyAssignment, StandbyAssignmentError } from '../../src/actors/rank/standbyAssignment.js';
import { pidExists as alive } from '../helpers/jobProcesses.js';

t.test('an assignment is {env: strings, args: strings}; anything else is refused by name', async (t) => {
  t.same(parseStandbyAssignment('{"env":{"RANK":"1"},"args":[]}'), { env: { RANK: '1' }, args: [] });
  t.same(parseStandbyAssignment('{"env":{},"args":["--x"]}'), { env: {}, args: ['--x'] });
  const refused: [string, RegExp][] = [
    ['nope', /not JSON/],
    ['[]', /must be an object/],
    ['null', /must be an object/],
    ['{"args":[]}', /needs env/],
    ['{"env":{"RANK":1},"args":[]}', /env\.RANK must be a string/],
    ['{"env":{},"args":[1]}', /needs args/],
    ['{"env":{}}', /needs args/],
  ];
  for (const [line, msg] of refused) {
    let err: unknown = null;
    try {
      parseStandbyAssignment(line);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof StandbyAssignmentError, `${line}: refused`);
    t.match((err as Error | null)?.message, msg, `${line}: named`);
  }
});

t.test('the line is read whole across chunks; stdin ending first means no assignment', async (t) => {
  const s = new PassThrough();
  const got = readStandbyAssignment(s);
  s.write('{"env":{"A":');
  s.write('"b"},"args":[]}\n{"ignored":true}\n');
  t.same(await got, { env: { A: 'b' }, args: [] });
  const e = new PassThrough();
  const none = readStandbyAssignment(e);
  e.end('{"env":{}');
  t.equal(await none, null, 'a partial line then the end: the agent is gone');
  const big = new PassThrough();
  const tooLong = readStandbyAssignment(big);
  big.write('x'.repeat((1 << 20) + 10));
  await t.rejects(tooLong, /longer than/);
});

// a stand-in for `rank --standby`: prints its pid, then the env value it was assigned
const standbyScript = `
  console.log('ready ' + process.pid);
  let buf = '';
  process.stdin.on('data', (c) => {
    buf += c;
    if (buf.includes('\\n')) { console.log('assigned ' + JSON.parse(buf).env.ROLE); process.exit(0); }
  });
  process.stdin.on('end', () => process.exit(3));`;

t.test('the pool hands a ready standby its assignment, prepares the next one, and stops them all on close', async (t) => {
  const started: ProcessChild[] = [];
  const out = new Map<number, string>();
  const pool = new StandbyRanks((rank) => {
    const c = new ProcessChild({ command: process.execPath, args: ['-e', standbyScript], lifeline: true, onOutput: (s, b) => s === 'stdout' && out.set(rank, (out.get(rank) ?? '') + b.toString()) });
    started.push(c);
    return c;
  }, 50);
  t.teardown(async () => {
    await pool.close();
    for (const c of started) await c.stop('teardown', true);
  });
  t.equal(pool.assign(0, { env: { ROLE: 'first' }, args: [] }), null, 'no standby yet: the caller starts the rank itself');
  while (!(out.get(0) ?? '').includes('ready')) await new Promise((r) => setTimeout(r, 20));
  t.equal(started.length, 1, 'one standby prepared after the delay');
  const child = pool.assign(0, { env: { ROLE: 'second' }, args: [] });
  t.equal(child, started[0], 'the waiting standby becomes the rank');
  const exit = await child!.exited;
  t.equal(exit.code, 0);
  t.match(out.get(0), /assigned second/, 'it read the assignment given');
  out.set(0, '');
  while (!(out.get(0) ?? '').includes('ready')) await new Promise((r) => setTimeout(r, 20));
  t.equal(started.length, 2, 'a new standby replaces the one taken');
  const waiting = started[1]!;
  await pool.close();
  await waiting.exited;
  t.notOk(alive(waiting.pid!), 'close stops the waiting standby');
  t.equal(pool.assign(0, { env: { ROLE: 'late' }, args: [] }), null, 'a closed pool hands out nothing');
  await new Promise((r) => setTimeout(r, 120));
  t.equal(started.length, 2, 'and prepares nothing');
});

t.test('a standby that died is not handed out', async (t) => {
  const started: ProcessChild[] = [];
  const pool = new StandbyRanks(() => {
    const c = new ProcessChild({ command: process.execPath, args: ['-e', 'process.exit(0)'], lifeline: true });
    started.push(c);
    return c;
  }, 10);
  t.teardown(() => pool.close());
  pool.assign(1, { env: {}, args: [] });
  while (started.length === 0) await new Promise((r) => setTimeout(r, 10));
  await started[0]!.exited;
  t.equal(pool.assign(1, { env: {}, args: [] }), null);
});
