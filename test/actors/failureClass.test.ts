// Which failures a restart can cure: deterministic codes (config, data, model files, full disk,
// permissions) are not retried; crashes, communication errors, injected faults and unknown codes
// are. The rank's exit code for a deterministic failure is distinct from every other exit code.
import t from 'tap';
import { DETERMINISTIC_EXIT_CODE, failureClassOf } from '../../src/actors/failureClass.js';

t.test('deterministic and transient codes', async (t) => {
  for (const code of ['ERR_CONFIG', 'ERR_DATA', 'ERR_FILE', 'ERR_SAFETENSORS', 'ERR_CHECKPOINT', 'ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'ENOENT']) {
    t.equal(failureClassOf(code), 'deterministic', code);
  }
  for (const code of ['ERR_COMM_TIMEOUT', 'ERR_COMM_PEER', 'ERR_COMM_CLOSED', 'ERR_RENDEZVOUS_TIMEOUT', 'ERR_CHAOS_CHECKPOINT_WRITE', 'ERR_CHAOS_STORM', 'ERR_NONFINITE', 'ERR_POLICY_ESCALATE', 'ERR_SYNTHETIC', 'EIO', 'ERR_SOMETHING_NEW', '', undefined, null]) {
    t.equal(failureClassOf(code), 'transient', String(code));
  }
});

t.test('the deterministic exit code is none of the others a rank uses', async (t) => {
  // 0 done, 1 failed (transient), 2 bad environment, 143 SIGTERM
  t.notOk([0, 1, 2, 143].includes(DETERMINISTIC_EXIT_CODE));
});
