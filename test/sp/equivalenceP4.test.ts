// The proof of Ulysses correctness (REFERENCE §2, issue 3): real rank processes on loopback run
// the trainer's recipe on their shards (P = 2, P = 4, SP = 2 x DP = 2; MHA, GQA, kv replication,
// qwen2 biases, lengths that need padding, packed documents, checkpointing), and the loss and
// EVERY parameter gradient must equal one process on the full sequence(s): for SP x DP the
// reference is the mean over the replicas' sequences of each one's loss (normalized by its own
// valid count). Metric per tensor: ||g_sp - g_ref|| / ||g_ref|| < 1e-4 (fp32).
import t from 'tap';
import { CASES_W4 } from './fixtures/cases.js';
import { checkSet } from './fixtures/checkEquivalence.js';

t.test('P = 4 (GQA; kv replication with checkpointing) and SP = 2 x DP = 2 equal one process', (t) => checkSet(t, 'w4', 4, CASES_W4));
