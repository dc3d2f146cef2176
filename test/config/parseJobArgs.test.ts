import t from 'tap';
import { parseJobArgs } from '../../src/config/index.js';

t.test('config path: positional, --config, --config_file, --config=', async (t) => {
  t.equal(parseJobArgs(['job.yaml']).configPath, 'job.yaml');
  t.equal(parseJobArgs(['--config', 'a.yaml']).configPath, 'a.yaml');
  t.equal(parseJobArgs(['--config_file=b.yaml']).configPath, 'b.yaml');
  const two = parseJobArgs(['a.yaml', '--config', 'b.yaml']);
  t.equal(two.problems.length, 1, 'two config files is a problem');
});

t.test('--KEY VALUE, --key=value, dashes, nested paths, unique last parts, aliases', async (t) => {
  const p = parseJobArgs(['job.yaml', '--learning_rate', '1e-4', '--max-steps=10', '--cluster.max_restarts', '5', '--heartbeat_interval_s', '2', '--launcher', 'ssh', '--seed', '-1']);
  t.same(p.problems, []);
  t.same(p.overrides.map((o) => [o.key, o.value]), [
    ['learning_rate', '1e-4'], ['max_steps', '10'], ['cluster.max_restarts', '5'], ['cluster.heartbeat_interval_s', '2'], ['cluster.launcher', 'ssh'], ['seed', '-1'],
  ]);
});

t.test('booleans: bare, explicit, --no-; --debug; --resume_from_checkpoint bare or with a path', async (t) => {
  const p = parseJobArgs(['--bf16', '--packing', 'false', '--no-debug', '--debug', '--resume_from_checkpoint', 'job.yaml']);
  t.same(p.overrides.map((o) => [o.key, o.value]), [['bf16', true], ['packing', 'false'], ['debug', 'false'], ['debug', true], ['resume_from_checkpoint', true]]);
  t.equal(p.configPath, 'job.yaml', 'a job file after a bare boolean is the config');
  t.same(parseJobArgs(['--resume_from_checkpoint', 'out/checkpoint-5']).overrides[0]!.value, 'out/checkpoint-5');
});

t.test('--adjust-lr [X]: bare means 1.0; a number is taken; a bad one is a problem', async (t) => {
  t.equal(parseJobArgs(['--adjust-lr']).adjustLr, 1.0);
  t.equal(parseJobArgs(['--adjust-lr', '0.5', 'job.yaml']).adjustLr, 0.5);
  t.equal(parseJobArgs(['--adjust_lr=2']).adjustLr, 2);
  const bare = parseJobArgs(['--adjust-lr', 'job.yaml']);
  t.equal(bare.adjustLr, 1.0);
  t.equal(bare.configPath, 'job.yaml');
  t.equal(parseJobArgs(['--adjust-lr=-1']).problems.length, 1);
});

t.test('unknown, ambiguous, valueless flags are all collected; ignored keys are noted', async (t) => {
  const p = parseJobArgs(['--lerning_rate', '1', '--noise_std', '0.1', '--seed', '--do_train', 'true', '--json'], { json: 'bool' });
  t.same(p.problems.map((x) => x.key), ['--lerning_rate', '--noise_std', '--seed']);
  t.match(p.problems[0]!.fix, /did you mean --learning_rate\?/);
  t.match(p.problems[1]!.fix, /gradient_policy\.vanishing\.noise_std/);
  t.same(p.ignored, [{ key: 'do_train', flag: '--do_train' }]);
  t.same(p.command, { json: true });
});
