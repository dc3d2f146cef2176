// Launcher choice and command lines (pure): which hosts run locally or over ssh, the loopback
// bind check, the exact ssh invocation (batch mode, host key policy, port, identity, the key
// read from stdin, never on the command line), and shell quoting of printed commands.
import t from 'tap';
import { bindProblem, isLoopbackHost, launcherKinds, sshCommand, shellLine, shellQuote, type SshSettings } from '../../src/actors/launchers/index.js';

t.test('default launcher: local for this machine and loopback, ssh for other hosts', async (t) => {
  t.same(launcherKinds(['127.0.0.1', '127.0.0.2', 'localhost', 'me@127.0.0.3', 'node7'], 'local', false), ['local', 'local', 'local', 'local', 'ssh']);
  t.same(launcherKinds(['127.0.0.1', 'node7'], 'ssh', true), ['ssh', 'ssh'], 'an explicit --launcher ssh applies to every host, loopback included');
  t.same(launcherKinds(['node1', 'node2'], 'local', true), ['local', 'local'], 'an explicit --launcher local simulates hosts on this machine');
  t.same(launcherKinds(['a', 'b'], 'external', true), ['external', 'external']);
  t.ok(isLoopbackHost('127.9.9.9'));
  t.notOk(isLoopbackHost('10.0.0.1'));
});

t.test('a loopback coordinator with agents on other machines is refused', async (t) => {
  t.equal(bindProblem(['127.0.0.1', '127.0.0.2'], ['local', 'local'], '127.0.0.1'), null);
  t.match(String(bindProblem(['127.0.0.1', 'node7'], ['local', 'ssh'], '127.0.0.1')), /node7 is another machine/);
  t.equal(bindProblem(['127.0.0.1', 'node7'], ['local', 'ssh'], '0.0.0.0'), null);
  t.equal(bindProblem(['127.0.0.1'], ['ssh'], '127.0.0.1'), null, 'ssh to loopback reaches a loopback coordinator');
});

t.test('ssh command line', async (t) => {
  const s: SshSettings = {
    port: 2222,
    user: 'trainer',
    identityFile: '/keys/id_ed25519',
    strictHostKeyChecking: 'accept-new',
    connectTimeoutS: 7,
    options: ['UserKnownHostsFile=/tmp/kh'],
    agentCommand: '/opt/node/bin/node /opt/ua/dist/src/cli/entry.js',
  };
  const { command, args, remote } = sshCommand(s, { hostIndex: 3, host: 'node9', slots: 4, joinUrl: 'tcp://head:29500', keyFile: '/tmp/secret/job.key' });
  t.equal(command, 'ssh');
  const joined = args.join(' ');
  for (const want of ['-o BatchMode=yes', '-o StrictHostKeyChecking=accept-new', '-o ConnectTimeout=7', '-p 2222', '-i /keys/id_ed25519', '-o IdentitiesOnly=yes', '-o UserKnownHostsFile=/tmp/kh', '-l trainer', '-- node9']) {
    t.ok(joined.includes(want), `has ${want}`);
  }
  t.equal(args[args.length - 1], remote);
  t.equal(remote, 'exec /opt/node/bin/node /opt/ua/dist/src/cli/entry.js agent --join tcp://head:29500 --job-key - --host-index 3 --slots 4 --exit-on-stdin-close');
  t.notOk(joined.includes('/tmp/secret/job.key'), 'not even the local key path goes to the remote host');
  const withUser = sshCommand(s, { hostIndex: 0, host: 'me@node1', slots: 1, joinUrl: 'tcp://h:1', keyFile: 'k' }).args;
  t.notOk(withUser.includes('-l'), 'user@host in the hostfile wins over cluster.ssh.user');
});

t.test('shell quoting', async (t) => {
  t.equal(shellQuote('tcp://127.0.0.1:5555'), 'tcp://127.0.0.1:5555');
  t.equal(shellQuote("a b'c"), `'a b'\\''c'`);
  t.equal(shellLine(['agent', '--job-key', '/tmp/my dir/job.key']), "agent --job-key '/tmp/my dir/job.key'");
});
