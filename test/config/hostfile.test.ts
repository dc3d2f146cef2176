import t from 'tap';
import { problemsOf } from './helpers/problemsOf.js';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ConfigError, defaultHosts, loadHostfile, parseHostfile, placeRanks, selectHosts, worldSizeOf } from '../../src/config/index.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));


t.test('a DeepSpeed hostfile with comments, blank lines and host:N parses in order', async (t) => {
  const hosts = loadHostfile(join(fixtures, 'hosts_good.txt'));
  t.same(hosts.map((h) => [h.host, h.slots.length, h.line]), [['worker-0', 2, 3], ['worker-1', 3, 4], ['10.0.0.7', 1, 5]]);
  t.equal(worldSizeOf(hosts), 6);
  const ranks = placeRanks(hosts);
  t.same(ranks.map((r) => `${r.rank}:${r.host}:${r.localRank}/${r.localWorldSize}`), [
    '0:worker-0:0/2', '1:worker-0:1/2', '2:worker-1:0/3', '3:worker-1:1/3', '4:worker-1:2/3', '5:10.0.0.7:0/1',
  ], 'ranks in hostfile order, host 0 first');
});

t.test('every problem of a bad hostfile is listed with its line', async (t) => {
  const file = join(fixtures, 'hosts_bad.txt');
  const ps = problemsOf(() => loadHostfile(file));
  t.same(ps.map((p) => p.source), [2, 3, 5, 6, 7].map((n) => `${file}:${n}`));
  t.match(ps[0]!.message, /slots must be a whole number/);
  t.match(ps[1]!.message, /duplicate host \(first on line 1\)/);
  t.match(ps[2]!.message, /missing slots/);
  t.match(ps[3]!.message, /not a valid host name/);
  t.match(ps[4]!.message, /unexpected text/);
  t.equal(ps[4]!.value, 'gpus=4');
});

t.test('edge cases: empty file, zero slots, IPv6, user@host, unreadable file', async (t) => {
  t.match(problemsOf(() => parseHostfile('# nothing\n\n', 'h.txt'))[0]!.message, /no hosts/);
  t.match(problemsOf(() => parseHostfile('a slots=0\n', 'h.txt'))[0]!.source, 'h.txt:1');
  t.match(problemsOf(() => parseHostfile('a:x\n', 'h.txt'))[0]!.value, 'x');
  t.same(parseHostfile('::1 slots=2\nroot@node-1 slots=1\n', 'h.txt').map((h) => h.host), ['::1', 'root@node-1']);
  t.match(problemsOf(() => loadHostfile(join(fixtures, 'no-such-hosts.txt')))[0]!.message, /cannot read/);
});

t.test('no hostfile: localhost with the given default slots', async (t) => {
  t.same(defaultHosts(4), [{ host: 'localhost', slots: [0, 1, 2, 3] }]);
  t.equal(placeRanks(defaultHosts(2)).length, 2);
  t.throws(() => defaultHosts(0), ConfigError);
});

t.test('--include / --exclude in DeepSpeed syntax', async (t) => {
  const hosts = parseHostfile('a slots=4\nb slots=2\nc slots=1\n', 'h.txt');
  const inc = selectHosts(hosts, { include: 'a:0,2@c' });
  t.same(inc.map((h) => [h.host, h.slots]), [['a', [0, 2]], ['c', [0]]]);
  t.same(placeRanks(inc).map((r) => `${r.host}:${r.localRank}:${r.slot}`), ['a:0:0', 'a:1:2', 'c:0:0'], 'local ranks are dense, slots keep their ids');
  const exc = selectHosts(hosts, { exclude: 'a:1@b' });
  t.same(exc.map((h) => [h.host, h.slots]), [['a', [0, 2, 3]], ['c', [0]]]);
  const ps = problemsOf(() => selectHosts(hosts, { include: 'z@a:9' }));
  t.same(ps.map((p) => p.value), ['z', 'a:9']);
  t.throws(() => selectHosts(hosts, { include: 'a', exclude: 'b' }), ConfigError);
  t.throws(() => selectHosts(hosts, { exclude: 'a@b@c' }), ConfigError, 'excluding everything is an error');
});
