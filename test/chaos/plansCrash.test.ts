// Example fault plans that kill or stop a rank: crash, freeze (default heartbeats: 1 s x 3),
// hang, a crash inside a collective, a partition.
import { planTests } from './helpers/planTests.js';

planTests(['crash', 'freeze', 'hang', 'collective_crash', 'partition']);
