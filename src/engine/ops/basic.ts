/**
 * Typed wrappers for the layer kernels: linear, embedding, RMSNorm, RoPE, SwiGLU, residual.
 * Arguments are checked here (dtype, length from the sizes, contiguity) and again natively; the
 * work runs off the main thread. Every backward ADDS into its gradient outputs: zero them first.
 * Never pass a strided view: it is refused (ERR_LAYOUT), never silently copied.
 */
import { native } from '../native.js';
import { expectData, type Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';

type F32 = Tensor | Float32Array;
type I32 = Tensor | Int32Array;

function sizes(op: string, s: Record<string, number>): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 0) throw new EngineError('ERR_ARG', `${op}: ${k} must be a non-negative integer, got ${v}`);
  }
}

const f32 = (what: string, v: F32, shape: number[]) => expectData<Float32Array>(what, v, 'f32', shape);
const optF32 = (what: string, v: F32 | null | undefined, shape: number[]) => (v == null ? null : f32(what, v, shape));
const i32 = (what: string, v: I32, shape: number[]) => expectData<Int32Array>(what, v, 'i32', shape);

/** y[n,out] = x[n,in] W[out,in]^T + b[out] (b may be null). */
export async function linearForward(y: F32, x: F32, W: F32, b: F32 | null, n: number, inDim: number, outDim: number): Promise<void> {
  sizes('linearForward', { n, in: inDim, out: outDim });
  await native().linearForward(
    f32('linearForward y', y, [n, outDim]),
    f32('linearForward x', x, [n, inDim]),
    f32('linearForward W', W, [outDim, inDim]),
    optF32('linearForward b', b, [outDim]),
    n, inDim, outDim,
  );
}

export interface LinearGrads {
  dx?: F32 | null;
  dW?: F32 | null;
  db?: F32 | null;
}

/** dx += dy W; dW += dy^T x; db += column sums of dy (each optional). */
export async function linearBackward(g: LinearGrads, dy: F32, x: F32, W: F32, n: number, inDim: number, outDim: number): Promise<void> {
  sizes('linearBackward', { n, in: inDim, out: outDim });
  await native().linearBackward(
    optF32('linearBackward dx', g.dx, [n, inDim]),
    optF32('linearBackward dW', g.dW, [outDim, inDim]),
    optF32('linearBackward db', g.db, [outDim]),
    f32('linearBackward dy', dy, [n, outDim]),
    f32('linearBackward x', x, [n, inDim]),
    f32('linearBackward W', W, [outDim, inDim]),
    n, inDim, outDim,
  );
}

/** y[i] = table[ids[i]]; an id outside [0, vocab) rejects with ERR_SHAPE. */
export async function embeddingForward(y: F32, ids: I32, table: F32, n: number, vocab: number, dim: number): Promise<void> {
  sizes('embeddingForward', { n, vocab, dim });
  await native().embeddingForward(
    f32('embeddingForward y', y, [n, dim]),
    i32('embeddingForward ids', ids, [n]),
    f32('embeddingForward table', table, [vocab, dim]),
    n, vocab, dim,
  );
}

/** dtable[ids[i]] += dy[i], deterministic for any thread count. */
export async function embeddingBackward(dtable: F32, dy: F32, ids: I32, n: number, vocab: number, dim: number): Promise<void> {
  sizes('embeddingBackward', { n, vocab, dim });
  await native().embeddingBackward(
    f32('embeddingBackward dtable', dtable, [vocab, dim]),
    f32('embeddingBackward dy', dy, [n, dim]),
    i32('embeddingBackward ids', ids, [n]),
    n, vocab, dim,
  );
}

/** y = x * rstd * w per row of [n, dim]; rstd[n] is saved for the backward. */
export async function rmsnormForward(y: F32, rstd: F32, x: F32, w: F32, n: number, dim: number, eps: number): Promise<void> {
  sizes('rmsnormForward', { n, dim });
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new EngineError('ERR_ARG', `rmsnormForward: eps must be finite and >= 0, got ${eps}`);
  await native().rmsnormForward(
    f32('rmsnormForward y', y, [n, dim]),
    f32('rmsnormForward rstd', rstd, [n]),
    f32('rmsnormForward x', x, [n, dim]),
    f32('rmsnormForward w', w, [dim]),
    n, dim, eps,
  );
}

/** dx += d/dx, dw += d/dw (either null to skip). */
export async function rmsnormBackward(
  dx: F32 | null, dw: F32 | null, dy: F32, x: F32, w: F32, rstd: F32, n: number, dim: number,
): Promise<void> {
  sizes('rmsnormBackward', { n, dim });
  await native().rmsnormBackward(
    optF32('rmsnormBackward dx', dx, [n, dim]),
    optF32('rmsnormBackward dw', dw, [dim]),
    f32('rmsnormBackward dy', dy, [n, dim]),
    f32('rmsnormBackward x', x, [n, dim]),
    f32('rmsnormBackward w', w, [dim]),
    f32('rmsnormBackward rstd', rstd, [n]),
    n, dim,
  );
}

function ropeArgs(op: string, x: F32, pos: I32, n: number, heads: number, d: number, theta: number) {
  sizes(op, { n, heads, d });
  if (d % 2 !== 0) throw new EngineError('ERR_SHAPE', `${op}: head dimension d must be even, got ${d}`);
  if (!(theta > 0) || !Number.isFinite(theta)) throw new EngineError('ERR_ARG', `${op}: theta must be finite and > 0, got ${theta}`);
  return [f32(`${op} x`, x, [n, heads, d]), i32(`${op} pos`, pos, [n]), n, heads, d, theta] as const;
}

/** In-place rotate-half RoPE on x[n, heads, d] with global position ids pos[n]. */
export async function ropeForward(x: F32, pos: I32, n: number, heads: number, d: number, theta: number): Promise<void> {
  await native().ropeForward(...ropeArgs('ropeForward', x, pos, n, heads, d, theta));
}

/** In-place transpose rotation: turns dL/d(rope(x)) into dL/dx. */
export async function ropeBackward(dx: F32, pos: I32, n: number, heads: number, d: number, theta: number): Promise<void> {
  await native().ropeBackward(...ropeArgs('ropeBackward', dx, pos, n, heads, d, theta));
}

/** out = silu(gate) * up over `count` elements. */
export async function swigluForward(out: F32, gate: F32, up: F32, count: number): Promise<void> {
  sizes('swigluForward', { count });
  await native().swigluForward(
    f32('swigluForward out', out, [count]),
    f32('swigluForward gate', gate, [count]),
    f32('swigluForward up', up, [count]),
    count,
  );
}

/** dgate += dout * up * silu'(gate); dup += dout * silu(gate) (either null to skip). */
export async function swigluBackward(dgate: F32 | null, dup: F32 | null, dout: F32, gate: F32, up: F32, count: number): Promise<void> {
  sizes('swigluBackward', { count });
  await native().swigluBackward(
    optF32('swigluBackward dgate', dgate, [count]),
    optF32('swigluBackward dup', dup, [count]),
    f32('swigluBackward dout', dout, [count]),
    f32('swigluBackward gate', gate, [count]),
    f32('swigluBackward up', up, [count]),
    count,
  );
}

/** y = a + b over `count` elements (y may be a or b). */
export async function residualForward(y: F32, a: F32, b: F32, count: number): Promise<void> {
  sizes('residualForward', { count });
  await native().residualForward(
    f32('residualForward y', y, [count]),
    f32('residualForward a', a, [count]),
    f32('residualForward b', b, [count]),
    count,
  );
}

/** da += dy; db += dy (either null to skip). */
export async function residualBackward(da: F32 | null, db: F32 | null, dy: F32, count: number): Promise<void> {
  sizes('residualBackward', { count });
  await native().residualBackward(
    optF32('residualBackward da', da, [count]),
    optF32('residualBackward db', db, [count]),
    f32('residualBackward dy', dy, [count]),
    count,
  );
}
