// Names that carry their owner's pid: the next start removes those of dead owners and never
// touches those of live ones; a finished job's processes own none.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entriesOwnedBy, ownedEntries, sweepDeadOwners } from '../../src/actors/sweepStale.js';

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

t.test('entries of dead owners are swept, live ones kept', async (t) => {
  const dead = deadPid();
  const deadDir = join(tmpdir(), `ulysses-job-${dead}-sweeptest`);
  const liveDir = join(tmpdir(), `ulysses-agent-${process.pid}-sweeptest`);
  const deadShm = `/dev/shm/ua-comm-p${dead}-sweeptest-0`;
  const liveShm = `/dev/shm/ua-win-p${process.pid}-sweeptest-1`;
  mkdirSync(deadDir, { recursive: true });
  writeFileSync(join(deadDir, 'job.key'), '{}');
  mkdirSync(liveDir, { recursive: true });
  const shm = existsSync('/dev/shm');
  if (shm) {
    writeFileSync(deadShm, 'x');
    writeFileSync(liveShm, 'x');
  }
  t.teardown(() => spawnSync('rm', ['-rf', deadDir, liveDir, deadShm, liveShm]));
  const owned = ownedEntries().map((e) => e.path);
  t.ok(owned.includes(deadDir) && owned.includes(liveDir), 'both temp dirs are recognized with their pids');
  t.same(entriesOwnedBy([dead]).sort(), [deadDir, ...(shm ? [deadShm] : [])].sort(), 'the dead pid owns its dir and segment');
  const removed = sweepDeadOwners();
  t.ok(removed.includes(deadDir), 'the dead owner\'s key dir is removed');
  t.notOk(existsSync(deadDir));
  t.ok(existsSync(liveDir), 'a live owner\'s dir is kept');
  if (shm) {
    t.ok(removed.includes(deadShm), 'the dead owner\'s segment is removed');
    t.notOk(existsSync(deadShm));
    t.ok(existsSync(liveShm), 'a live owner\'s segment is kept');
  }
});
