// The ssh launcher against a real OpenSSH server on loopback that this test starts itself
// (sshd -D with a temporary config, host key and user key; an ephemeral port). Checks that a job
// runs to completion through it, that the job key never appears on any process's command line
// (it travels over the ssh session's stdin), and that killing the ssh session stops the remote
// agent and its ranks (the stdin lifeline): no process of the job is left.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../helpers/cli.js';
import { alive, collect, gone, jobPids, killAll, readEvents, waitFor } from '../helpers/jobProcesses.js';
import { cliEntry } from '../../src/util/packageRoot.js';

const which = (cmd: string) => {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']) if (existsSync(join(d, cmd))) return join(d, cmd);
  return null;
};
const sshd = which('sshd');
const ssh = which('ssh');
const keygen = which('ssh-keygen');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });

/** Every process's command line (what `ps` shows to anyone on the machine). */
function commandLines(): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.push({ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

if (!sshd || !ssh || !keygen) {
  t.skip(`OpenSSH is not installed (need sshd, ssh and ssh-keygen; scripts/setup.sh installs openssh-server and openssh-client)`);
} else {
  t.test('ssh launcher', async (t) => {
    const dir = t.testdir();
    const user = userInfo().username;
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
    for (const [name, comment] of [['host_ed25519', 'host'], ['id_ed25519', 'user']]) {
      const r = spawnSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', comment!, '-f', join(dir, name!)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    }
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'id_ed25519.pub')), { mode: 0o600 });
    const port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_ed25519')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    const server = spawn(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let serverLog = '';
    server.stderr!.on('data', (b: Buffer) => (serverLog += b.toString()));
    t.teardown(() => killAll([server.pid!]));
    const t0 = Date.now();
    while (!(await accepts(port))) {
      if (Date.now() - t0 > 10_000 || server.exitCode !== null) throw new Error(`sshd did not start:\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // the client checks the server's key strictly against this known_hosts file
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    writeFileSync(join(dir, 'hosts.txt'), `${user}@127.0.0.1 slots=2\n`);

    const upArgs = (out: string, extra: string[]) => [
      'up', '--nodes', join(dir, 'hosts.txt'), '--launcher', 'ssh',
      '--cluster.ssh.port', String(port),
      '--cluster.ssh.identity_file', join(dir, 'id_ed25519'),
      '--cluster.ssh.strict_host_key_checking', 'yes',
      '--cluster.ssh.options', `UserKnownHostsFile=${join(dir, 'known_hosts')},GlobalKnownHostsFile=/dev/null,LogLevel=ERROR`,
      '--cluster.agent_command', `${process.execPath} ${cliEntry()}`,
      '--job-key', join(out, '..', `${out.split('/').pop()}.key`),
      '--workload', 'synthetic', '--cluster.heartbeat_interval_s', '0.2', '--cluster.shutdown_grace_s', '1',
      '--output_dir', out, ...extra,
    ];

    await t.test('a job runs through sshd; the key is never on a command line; nothing is left', async (t) => {
      const out = join(dir, 'run1');
      const keyFile = join(dir, 'run1.key');
      const up = spawnCli(upArgs(out, ['--synthetic-step-ms', '40', '--max_steps', '30', '--save_steps', '10']));
      const io = collect(up);
      t.teardown(() => killAll([up.pid!, ...jobPids(readEvents(join(out, 'events.ndjson')))]));
      // watch every command line on the machine while the job runs
      const secrets = new Set<string>();
      let scans = 0;
      let sawSsh = '';
      // agents seen (other tests may run local agents meanwhile: this job's is the one joining the ssh command's URL)
      const agents: string[] = [];
      const leaks: string[] = [];
      let done = false;
      void io.exit.then(() => (done = true));
      while (!done) {
        if (existsSync(keyFile) && secrets.size === 0) {
          try {
            const k = JSON.parse(readFileSync(keyFile, 'utf8'));
            for (const s of [k.server.secretKey, k.client.secretKey, k.server.publicKey, k.client.publicKey]) secrets.add(s);
          } catch {
            /* being written */
          }
        }
        for (const { pid, cmd } of commandLines()) {
          if (cmd.includes('BatchMode=yes') && cmd.includes('--job-key')) sawSsh = cmd;
          if (cmd.includes(' agent --join ') && cmd.includes('--exit-on-stdin-close') && !cmd.includes('BatchMode') && !cmd.startsWith('bash') && !cmd.startsWith('sh ')) agents.push(cmd);
          for (const s of secrets) if (cmd.includes(s)) leaks.push(`pid ${pid}: ${cmd.slice(0, 200)}`);
        }
        scans++;
        await new Promise((r) => setTimeout(r, 40));
      }
      const { code } = await io.exit;
      t.equal(code, 0, `exit 0\n${io.err()}\n--- sshd:\n${serverLog.slice(-3000)}`);
      t.match(io.out(), /job succeeded: 30 steps/);
      t.ok(secrets.size === 4, 'the test read the job key');
      t.same(leaks, [], `no key material on any command line (${scans} scans of /proc/*/cmdline)`);
      t.match(sawSsh, /-o BatchMode=yes/, 'the ssh client ran in batch mode');
      t.match(sawSsh, /StrictHostKeyChecking=yes/);
      t.match(sawSsh, /--job-key -/, 'the remote agent reads the key from stdin');
      const joinOf = (c: string) => /--join (\S+)/.exec(c)?.[1];
      const sawRemoteAgent = agents.find((c) => joinOf(c) === joinOf(sawSsh)) ?? agents[agents.length - 1] ?? '';
      t.match(sawRemoteAgent, /agent --join tcp:\/\/127\.0\.0\.1:\d+ --job-key - /, `the agent ran under sshd: ${sawRemoteAgent}`);
      const events = readEvents(join(out, 'events.ndjson'));
      t.equal(events.filter((e) => e.type === 'rank.done').length, 2);
      const pids = jobPids(events);
      t.equal(pids.length, 3, 'one agent and two ranks');
      t.same(await gone(pids), [], 'no process of the job is left');
      t.notOk(existsSync(keyFile), 'the key file `up` created is removed at the end');
    });

    /** An endless job, once it ran a few steps: the `up` process, its output and the job's pids. */
    const startEndlessJob = async (t: Test, out: string) => {
      const up = spawnCli(upArgs(out, ['--synthetic-step-ms', '50', '--max_steps', '100000']));
      const io = collect(up);
      t.teardown(() => killAll([up.pid!, ...jobPids(readEvents(join(out, 'events.ndjson')))]));
      const events = join(out, 'events.ndjson');
      await waitFor('steps', () => readEvents(events).filter((e) => e.type === 'job.step').length >= 3, 30_000);
      const pids = jobPids(readEvents(events));
      t.equal(pids.length, 3);
      return { up, io, events, pids };
    };

    await t.test('SIGINT to up stops the remote agent and its ranks (exit 130)', async (t) => {
      const { up, io, pids } = await startEndlessJob(t, join(dir, 'run3'));
      up.kill('SIGINT');
      const { code } = await io.exit;
      t.equal(code, 130, `exit 130\n${io.err()}`);
      t.same(await gone(pids, 5000), [], 'no process of the job is left on the remote host');
    });

    await t.test('a lost ssh session stops the remote agent and its ranks; the job fails with the reason', async (t) => {
      const out = join(dir, 'run2');
      const { io, events, pids } = await startEndlessJob(t, out);
      // the local ssh client: a child of `up` whose command line has BatchMode
      const client = commandLines().find((c) => c.cmd.includes('BatchMode=yes') && c.cmd.includes(out.split('/').pop()!) === false && c.cmd.includes(`-p ${port}`));
      t.ok(client, 'found the ssh client');
      process.kill(client!.pid, 'SIGKILL');
      const { code } = await io.exit;
      t.equal(code, 1, `exit 1\n${io.err()}`);
      t.match(io.err(), /job failed: node agent of .*127\.0\.0\.1 exited/);
      t.same(await gone(pids, 8000), [], 'the remote agent and its ranks stopped (no orphans)');
      t.ok(pids.every((p) => !alive(p)));
      const agentPid = readEvents(events).find((e) => e.type === 'agent.joined')!.pid as number;
      t.same(readdirSync(tmpdir()).filter((n) => n.startsWith(`ulysses-agent-${agentPid}-`)), [], `the agent (pid ${agentPid}) removed its private copy of the key`);
    });
  });
}
