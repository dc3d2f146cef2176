// Example plans (examples/chaos) under the real training loop on the tiny model, first half:
// gradient faults absorbed by the gradient policy (NaN, vanishing, exploding), a failed checkpoint
// write, a hung rank, a crash with a corrupted checkpoint, a slow rank and control-plane faults.
// The recoverable ones share one fault-free reference (2 ranks, SP 2, 8 steps).
import { firstHalf } from './helpers/planLists.js';
import { planTests } from './helpers/planTests.js';

planTests(firstHalf);
