// Harness fixtures on the fast synthetic workload: crash, freeze, hang, crash in a collective, partition.
import { fixturesDir, planTests } from './helpers/planTests.js';

planTests(['crash', 'freeze', 'hang', 'collective_crash', 'partition'], fixturesDir);
