/**
 * The coded error a rank's training loop throws when the gradient policy gives up on non-finite
 * gradients (REFERENCE §5, nonfinite_patience): the coordinator rolls the job back to its last
 * checkpoint with a lower LR.
 */
export class PolicyEscalation extends Error {
  readonly code = 'ERR_POLICY_ESCALATE';
  constructor(readonly step: number, readonly streak: number) {
    super(`non-finite gradients for ${streak} consecutive steps (up to step ${step}): rolling back to the last checkpoint`);
    this.name = 'PolicyEscalation';
  }
}
