/**
 * The KTO loss of stage `kto` (LLaMA-Factory's CustomKTOTrainer over TRL's kto_loss) for one
 * micro-batch of unpaired examples, with its derivatives with respect to each example's policy
 * log-prob *sum* (what the engine's weighted backward turns into a gradient).
 *
 * Per example: π, ρ the policy's and the reference's sums of log p over the response tokens,
 * r = π − ρ, and the batch's KL estimate z0 (from mismatched prompt/completion pairs, clamped at
 * 0 and detached: a constant here). With β = pref_beta:
 *   desirable     ℓ = 1 − σ(β (r − z0)),  weighted by kto_chosen_weight
 *   undesirable   ℓ = 1 − σ(β (z0 − r)),  weighted by kto_rejected_weight
 *   L = (1/B) Σ w ℓ  over the B examples of the micro-batch, plus, when pref_ftx > 0 and the batch
 *   has nc ≥ 1 desirable examples, LLaMA-Factory's rescaled SFT term
 *   ftx · mean_desirable(−π/n) / nc · B   (n: the example's response tokens).
 * Rewards as TRL logs them: β r.
 *
 * Pure: no model, no collective; must never be fed partial (unreduced) sums.
 */
import { sigmoid } from './preferenceLoss.js';

export interface KtoSettings {
  /** pref_beta */
  beta: number;
  /** kto_chosen_weight */
  desirableWeight: number;
  /** kto_rejected_weight */
  undesirableWeight: number;
  /** pref_ftx */
  ftx: number;
}

/** One example of a micro-batch: reduced sums and its tag. */
export interface KtoExample {
  policy: number;
  reference: number;
  /** response tokens (the SFT term's per-token average) */
  tokens: number;
  desirable: boolean;
}

export interface KtoBatchTerms {
  /** the micro-batch's loss L */
  loss: number;
  /** dL/dπ of each example */
  dPolicy: Float64Array;
  /** β (π − ρ) of each example */
  rewards: Float64Array;
}

/** The KL estimate: mean of (policy − reference) over the mismatched pairs, clamped at 0 (0 with none). */
export function ktoKl(policySum: number, referenceSum: number, count: number): number {
  return count > 0 ? Math.max(0, (policySum - referenceSum) / count) : 0;
}

export function ktoBatchTerms(s: KtoSettings, batch: readonly KtoExample[], kl: number): KtoBatchTerms {
  const b = batch.length;
  const dPolicy = new Float64Array(b);
  const rewards = new Float64Array(b);
  let loss = 0;
  let nc = 0;
  for (const [i, e] of batch.entries()) {
    const r = e.policy - e.reference;
    rewards[i] = s.beta * r;
    // ℓ = 1 − σ(±β(r − z0)); dℓ/dr = ∓β σ(x)(1 − σ(x)) with x the sigmoid's argument
    const sign = e.desirable ? 1 : -1;
    const x = sign * s.beta * (r - kl);
    const p = sigmoid(x);
    const w = e.desirable ? s.desirableWeight : s.undesirableWeight;
    loss += (w * (1 - p)) / b;
    dPolicy[i] = (w * -sign * s.beta * p * (1 - p)) / b;
    if (e.desirable) nc++;
  }
  if (s.ftx > 0 && nc > 0) {
    // ftx · (Σ_desirable −π/n / nc) / nc · B
    const k = (s.ftx * b) / (nc * nc);
    for (const [i, e] of batch.entries()) {
      if (!e.desirable) continue;
      const n = Math.max(1, e.tokens);
      loss += k * (-e.policy / n);
      dPolicy[i] = dPolicy[i]! - k / n;
    }
  }
  return { loss, dPolicy, rewards };
}
