// The shutdown ladder against real processes.
import t from 'tap';
import { ProcessChild } from '../../src/actors/ProcessChild.js';
import { pidExists as alive } from '../helpers/jobProcesses.js';

const node = process.execPath;

t.test('a child that exits on SIGTERM stops at step 2 of the ladder', async (t) => {
  const c = new ProcessChild({ command: node, args: ['-e', 'setInterval(() => {}, 1000)'], graceMs: 3000 });
  t.teardown(() => c.stop('teardown'));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  await c.stop('test');
  const info = await c.exited;
  t.equal(info.signal, 'SIGTERM');
  t.ok(Date.now() - t0 < 2000, 'well before the grace period ended');
  t.notOk(alive(c.pid!));
});

t.test('a child that ignores SIGTERM is killed after the grace period, with its process group', async (t) => {
  const script = `
    process.on('SIGTERM', () => {});
    const { spawn } = require('node:child_process');
    const g = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: 'ignore' });
    console.log(g.pid);
    setInterval(() => {}, 1000);`;
  let grandchild = 0;
  const c = new ProcessChild({
    command: node,
    args: ['-e', script],
    graceMs: 500,
    onOutput: (s, b) => {
      if (s === 'stdout') grandchild = Number(b.toString().trim());
    },
  });
  t.teardown(() => c.stop('teardown'));
  while (!grandchild) await new Promise((r) => setTimeout(r, 20));
  t.ok(alive(grandchild), 'grandchild running');
  const t0 = Date.now();
  await c.stop('test');
  const info = await c.exited;
  t.equal(info.signal, 'SIGKILL');
  t.ok(Date.now() - t0 >= 450, 'waited for the grace period');
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(alive(grandchild), 'the grandchild in the same process group is gone too');
});

t.test('the abort request is tried first', async (t) => {
  const c = new ProcessChild({
    command: node,
    args: ['-e', "process.on('SIGUSR2', () => process.exit(0)); setInterval(() => {}, 1000); console.log('ready')"],
    requestAbort: () => process.kill(c.pid!, 'SIGUSR2'),
    abortWaitMs: 2000,
    onOutput: (s) => s === 'stdout' && (ready = true),
  });
  let ready = false;
  t.teardown(() => c.stop('teardown'));
  while (!ready) await new Promise((r) => setTimeout(r, 20));
  await c.stop('test');
  const info = await c.exited;
  t.equal(info.code, 0, `exited by itself after the abort request (${info.reason})`);
  t.match(info.reason, /stopped: test/);
});

t.test('exit code and stderr tail are reported for a crashing child', async (t) => {
  const c = new ProcessChild({ command: node, args: ['-e', 'console.error("fatal: out of cheese"); process.exit(3)'] });
  const info = await c.exited;
  t.equal(info.normal, false);
  t.equal(info.code, 3);
  t.match(String(info.detail?.stderrTail), /out of cheese/);
  await c.stop('after exit'); // a no-op, safe
});
