// Example fault plans that degrade but must not break a job: vanishing and exploding gradients
// (synthetic: scaled stand-in gradients), a slow rank, and control-plane faults through the
// fault proxy (drop, delay, duplicate, reorder).
import { planTests } from './helpers/planTests.js';

planTests(['vanishing_gradients', 'exploding_gradients', 'slow', 'net_drop', 'net_delay', 'net_duplicate', 'net_reorder']);
