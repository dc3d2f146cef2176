// Harness fixtures on the fast synthetic workload: faults the job must ride through without a restart.
import { fixturesDir, planTests } from './helpers/planTests.js';

planTests(['vanishing_gradients', 'exploding_gradients', 'slow', 'net_drop', 'net_delay', 'net_duplicate', 'net_reorder'], fixturesDir);
