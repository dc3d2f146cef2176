/**
 * The pairwise preference losses of stage dpo (`pref_loss`), as LLaMA-Factory and TRL define them,
 * for one pair of sequence log-probabilities, with their derivatives with respect to the policy's
 * log-prob *sums* (what the engine's weighted backward turns into a gradient).
 *
 * Inputs per side: the policy's sum of log p over the response tokens (π), the reference's (ρ,
 * unused by the reference-free losses) and the number of response tokens (n). The losses that
 * LLaMA-Factory feeds averaged log-probs (ipo, orpo, simpo) use π/n and ρ/n; sigmoid and hinge use
 * the sums. With h = (πc − ρc) − (πr − ρr) on those values:
 *   sigmoid  −(1−ε) log σ(βh) − ε log σ(−βh)              (ε: dpo_label_smoothing, cDPO)
 *   hinge    max(0, 1 − βh)
 *   ipo      (h − 1/(2β))²
 *   orpo     −ac + β · −log σ(log_odds),  log_odds = (ac − ar) − (log(1 − e^ac) − log(1 − e^ar))
 *   simpo    −log σ(β(ac − ar) − γ)                          (γ: simpo_gamma)
 * plus pref_ftx · (−πc/nc) for every loss (LLaMA-Factory's SFT term on the chosen side).
 *
 * Pure: no model, no collective; must never be fed partial (unreduced) sums.
 */

export type PrefLoss = 'sigmoid' | 'orpo' | 'simpo' | 'ipo' | 'hinge';

export interface PrefLossSettings {
  kind: PrefLoss;
  /** pref_beta */
  beta: number;
  /** simpo_gamma */
  simpoGamma: number;
  /** pref_ftx: weight of the chosen side's mean token NLL */
  ftx: number;
  /** dpo_label_smoothing (sigmoid only) */
  labelSmoothing: number;
}

/** The sigmoid loss with no extras: what `pref_loss: sigmoid` and the defaults give. */
export function sigmoidLoss(beta: number): PrefLossSettings {
  return { kind: 'sigmoid', beta, simpoGamma: 0, ftx: 0, labelSmoothing: 0 };
}

/** Whether the loss scores against a reference model (orpo and simpo do not load one). */
export function usesReference(kind: PrefLoss): boolean {
  return kind !== 'orpo' && kind !== 'simpo';
}

/** Whether the loss sees per-token averages (LLaMA-Factory divides by the valid length for these). */
export function averagesLogps(kind: PrefLoss): boolean {
  return kind === 'ipo' || kind === 'orpo' || kind === 'simpo';
}

/** One side of a pair: summed log-probs of policy and reference and the response token count. */
export interface SideLogps {
  policy: number;
  /** NaN (or anything) for the reference-free losses: never read */
  reference: number;
  tokens: number;
}

export interface PairTerms {
  loss: number;
  /** dL/dπc and dL/dπr (sums), for this pair alone */
  dChosen: number;
  dRejected: number;
  /** rewards as LLaMA-Factory logs them: β(π − ρ), or β·π without a reference (on the loss's scale) */
  rewardChosen: number;
  rewardRejected: number;
  /** the policy log-probs the loss saw (averages for ipo/orpo/simpo), logged as logps/* */
  logpChosen: number;
  logpRejected: number;
  /** orpo: the SFT part (−ac) and the odds-ratio part (−log σ(log_odds)) */
  sftLoss: number;
  oddsRatioLoss: number;
}

/** log σ(x) without overflow for large |x|. */
export function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** The loss of one pair and its derivatives with respect to the policy sums. */
export function preferencePairTerms(s: PrefLossSettings, chosen: SideLogps, rejected: SideLogps): PairTerms {
  const { beta } = s;
  const avg = averagesLogps(s.kind);
  // values the loss sees and d(value)/d(sum)
  const kc = avg ? 1 / Math.max(1, chosen.tokens) : 1;
  const kr = avg ? 1 / Math.max(1, rejected.tokens) : 1;
  const pc = chosen.policy * kc, pr = rejected.policy * kr;
  let loss: number, dc: number, dr: number, rewardChosen: number, rewardRejected: number;
  let sftLoss = 0, oddsRatioLoss = 0;
  if (usesReference(s.kind)) {
    const rc = chosen.reference * kc, rr = rejected.reference * kr;
    rewardChosen = beta * (pc - rc);
    rewardRejected = beta * (pr - rr);
    const h = pc - rc - (pr - rr);
    // dL/dh
    let g: number;
    if (s.kind === 'sigmoid') {
      const e = s.labelSmoothing;
      loss = -(1 - e) * logSigmoid(beta * h) - e * logSigmoid(-beta * h);
      g = beta * (-(1 - e) * sigmoid(-beta * h) + e * sigmoid(beta * h));
    } else if (s.kind === 'hinge') {
      const m = 1 - beta * h;
      loss = Math.max(0, m);
      g = m > 0 ? -beta : 0;
    } else {
      const d = h - 1 / (2 * beta);
      loss = d * d;
      g = 2 * d;
    }
    dc = g;
    dr = -g;
  } else {
    rewardChosen = beta * pc;
    rewardRejected = beta * pr;
    if (s.kind === 'orpo') {
      // log(1 − e^a) = log(−expm1(a)) keeps precision for a near 0; d/da = −e^a / (1 − e^a)
      const omc = -Math.expm1(pc), omr = -Math.expm1(pr);
      const logOdds = pc - pr - (Math.log(omc) - Math.log(omr));
      sftLoss = -pc;
      oddsRatioLoss = -logSigmoid(logOdds);
      loss = sftLoss + beta * oddsRatioLoss;
      const gOdds = -beta * sigmoid(-logOdds);
      dc = -1 + gOdds / omc;
      dr = -gOdds / omr;
    } else {
      const z = beta * (pc - pr) - s.simpoGamma;
      loss = -logSigmoid(z);
      const g = -beta * sigmoid(-z);
      dc = g;
      dr = -g;
    }
  }
  // pref_ftx: the chosen side's mean token NLL, whatever the loss
  if (s.ftx !== 0) loss += s.ftx * (-chosen.policy / Math.max(1, chosen.tokens));
  const dChosen = dc * kc - (s.ftx !== 0 ? s.ftx / Math.max(1, chosen.tokens) : 0);
  return { loss, dChosen, dRejected: dr * kr, rewardChosen, rewardRejected, logpChosen: pc, logpRejected: pr, sftLoss, oddsRatioLoss };
}
