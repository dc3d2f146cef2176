// Example fault plans under the real training loop (tiny model, 2 ranks, SP 2): NaN, vanishing and
// exploding gradients absorbed by the gradient policy (expect: absorb), a failed checkpoint write
// and a hung rank recovered by a restart with the fault-free weights.
import { planTests } from './helpers/planTests.js';

planTests(['train_nan', 'train_vanishing', 'train_exploding', 'train_write_fail', 'train_hang']);
