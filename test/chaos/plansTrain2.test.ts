// Every example plan (examples/chaos) under the real training loop on the tiny model, second half:
// a crash inside a collective, a partition, a slow rank, control-plane faults, a restart storm and
// several faults combined. Also checks that the two halves cover every example plan.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { examplesDir, planTests } from './helpers/planTests.js';

const secondHalf = ['train_collective_crash', 'train_partition', 'train_slow', 'train_network', 'train_restart_storm', 'train_combined'];
const firstHalf = ['train_nan', 'train_vanishing', 'train_exploding', 'train_write_fail', 'train_hang', 'train_crash', 'train_freeze'];

t.test('every example plan runs as a test', async (t) => {
  const all = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
  t.same([...firstHalf, ...secondHalf].sort(), all);
});

planTests(secondHalf);
