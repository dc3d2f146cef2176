/**
 * Which example plan runs in which test file: two halves of similar length, so tap's two parallel
 * jobs stay balanced. plansTrain2.test.ts checks that together they are every example plan.
 */
export const firstHalf = ['train_nan', 'train_vanishing', 'train_exploding', 'train_write_fail', 'train_hang', 'train_crash', 'train_slow', 'train_network', 'train_malformed_row', 'train_disk_full', 'train_soak'];
export const secondHalf = ['train_freeze', 'train_collective_crash', 'train_partition', 'train_coordinator_pause', 'train_coordinator_kill', 'train_restart_storm', 'train_combined'];
