// Harness fixtures on the fast synthetic workload: non-finite stand-in, checkpoint corruption and a
// failed write, a restart storm, and several faults combined.
import { fixturesDir, planTests } from './helpers/planTests.js';

planTests(['nan_gradients', 'checkpoint_corrupt', 'checkpoint_write_fail', 'restart_storm', 'combined'], fixturesDir);
