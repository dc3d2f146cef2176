// Every example plan (examples/chaos) under the real training loop on the tiny model, first half:
// gradient faults absorbed by the gradient policy, a failed checkpoint write, a hung rank, a crash
// with a corrupted checkpoint, a freeze. The second half is plansTrain2.test.ts.
import { planTests } from './helpers/planTests.js';

const firstHalf = ['train_nan', 'train_vanishing', 'train_exploding', 'train_write_fail', 'train_hang', 'train_crash', 'train_freeze'];
planTests(firstHalf);
