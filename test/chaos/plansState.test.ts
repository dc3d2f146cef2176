// Example fault plans about state: NaN gradients, checkpoint corruption, a failed checkpoint
// write, a restart storm (the job must give up), the combined plan, and a crash plus a corrupted
// checkpoint under the real training loop (tiny model, 2 ranks, SP 2).
import { planTests } from './helpers/planTests.js';

planTests(['nan_gradients', 'checkpoint_corrupt', 'checkpoint_write_fail', 'restart_storm', 'combined', 'train_crash']);
