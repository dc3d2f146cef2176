import t from 'tap';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ConfigError, localHostsForJob, resolveJob } from '../../src/config/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = join(root, 'test/config/fixtures');

t.test("up's rule: no hostfile means this machine with one rank per SP slot", async (t) => {
  const r = resolveJob([join(root, 'examples/tiny_pt.yaml'), '--debug'], { env: {}, defaultHosts: localHostsForJob });
  t.equal(r.job.config.debug, true, '--debug sets debug');
  t.same(r.hosts, [{ host: 'localhost', slots: [0, 1] }]);
  t.same(r.ranks!.map((x) => x.rank), [0, 1]);
});

t.test('a hostfile gives the world size that sequence_parallel_size must divide', async (t) => {
  const r = resolveJob([join(root, 'examples/tiny_pt.yaml'), '--nodes', join(root, 'examples/hosts.txt'), '--include', '127.0.0.1@127.0.0.2:0,1'], { env: {} });
  t.equal(r.ranks!.length, 4);
  try {
    resolveJob([join(root, 'examples/tiny_pt.yaml'), '--nodes', join(fixtures, 'hosts_good.txt'), '--sequence_parallel_size', '4', '--max_stepz', '3'], { env: {} });
    t.fail('expected a ConfigError');
  } catch (e) {
    t.ok(e instanceof ConfigError);
    t.same((e as ConfigError).problems.map((p) => p.key).sort(), ['--max_stepz', 'sequence_parallel_size'], 'the flag problem and the world problem together');
  }
});

t.test('--include without --nodes is a problem; ignored flags are reported', async (t) => {
  t.throws(() => resolveJob(['--include', 'a'], { env: {} }), ConfigError);
  const r = resolveJob(['--do_train', 'true', '--report_to', 'none'], { env: {} });
  t.same(r.ignored.map((i) => i.key), ['do_train', 'report_to']);
});
