/**
 * Model gradients against central finite differences of the model's loss: for each tensor, the
 * coordinate of its largest gradient and random others (one LCG stream across tensors), with a
 * tolerance relative to that largest gradient. One assertion per tensor. The parameters are
 * perturbed in place and restored bit for bit.
 */
import type { Test } from 'tap';
import { lcg } from '../../helpers/packedBatch.js';

export interface FdTensor {
  name: string;
  params: Float32Array;
  grads: Float32Array;
}

export interface FdOptions {
  perTensor: number;
  eps: number;
  rtol: number;
  atol: number;
  seed: number;
}

/** Returns the worst |diff| / tolerance and the number of coordinates checked. */
export async function fdTensors(t: Test, tensors: FdTensor[], loss: () => Promise<number>, o: FdOptions): Promise<{ worst: number; checked: number }> {
  const r = lcg(o.seed);
  let worst = 0;
  let checked = 0;
  for (const { name, params: p, grads: g } of tensors) {
    let gmax = 0;
    let imax = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > gmax) { gmax = Math.abs(g[i]!); imax = i; }
    const coords = new Set<number>([imax]);
    while (coords.size < o.perTensor) coords.add(Math.floor(r() * g.length));
    const tol = o.atol + o.rtol * gmax;
    const lines: string[] = [];
    let ok = true;
    for (const i of coords) {
      const old = p[i]!;
      p[i] = old + o.eps;
      const lp = await loss();
      p[i] = old - o.eps;
      const lm = await loss();
      p[i] = old;
      const fd = (lp - lm) / (2 * o.eps);
      const diff = Math.abs(fd - g[i]!);
      worst = Math.max(worst, diff / tol);
      if (diff > tol) ok = false;
      lines.push(`[${i}] analytic ${g[i]!.toExponential(4)} fd ${fd.toExponential(4)} |diff| ${diff.toExponential(2)}`);
      checked++;
    }
    t.ok(ok, `${name} (max |g| ${gmax.toExponential(2)}, tol ${tol.toExponential(2)}): ${lines.join('; ')}`);
  }
  return { worst, checked };
}
