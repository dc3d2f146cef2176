// Example plans (examples/chaos) under the real training loop on the tiny model, second half: a
// SIGSTOP freeze with the default heartbeats, a crash inside a collective, a partition of a
// 20-step job, a restart storm, and several faults combined. Also checks that the two halves run
// every example plan, each once.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { firstHalf, secondHalf } from './helpers/planLists.js';
import { examplesDir, planTests } from './helpers/planTests.js';

t.test('every example plan runs as a test, once', async (t) => {
  const all = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
  const listed = [...firstHalf, ...secondHalf].sort();
  t.same(listed, all, `listed: ${listed.join(', ')}; in examples/chaos: ${all.join(', ')}`);
});

planTests(secondHalf);
