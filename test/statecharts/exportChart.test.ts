import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { chartToMermaid, exportChart } from '../../src/statecharts/exportChart.js';
import { trainingPolicyMachine } from '../../src/statecharts/trainingPolicy.js';

t.test('the exported chart names all five policy states and the ordered guards', async (t) => {
  const chart = exportChart(trainingPolicyMachine);
  const keys = chart.states.map((s) => s.key);
  for (const k of ['warmup', 'normal', 'vanishing-intervention', 'late-stage', 'explode-clip']) t.ok(keys.includes(k), `state ${k}`);
  const root = chart.transitions.filter((x) => x.source === 'policy');
  t.same(
    root.map((x) => x.guard),
    ['nonfinite', 'exploding', 'inWarmup', 'lateVanishing', 'inLateStage', 'vanishing', null],
    'root handlers in priority order',
  );
  t.same(root[0]!.targets, [], 'non-finite steps stay in place');
  const mermaid = chartToMermaid(chart);
  t.match(mermaid, /^stateDiagram-v2/);
  t.match(mermaid, /policy_decide --> policy_explode_clip : 2\. \[exploding\]/);
});

t.test('`chart` CLI prints json and mermaid, and refuses an unknown format with exit 2', async (t) => {
  const json = runCli(['chart', '--format', 'json']);
  t.equal(json.status, 0, json.stderr);
  t.equal(JSON.parse(json.stdout).id, 'policy');
  const bad = runCli(['chart', '--format', 'svgz']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--format must be json or mermaid/);
});
