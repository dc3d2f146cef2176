/**
 * An independent fp64 re-implementation of the Hugging Face decoders the engine runs (Llama 3.x,
 * Qwen2/2.5, Qwen3, Mistral), forward AND backward, written from HF's semantics (REFERENCE §1, §7):
 * it reads the raw config.json object itself, with HF's defaults per model type, so it checks the
 * engine's config parsing as well as its math. Rope frequencies for default / linear / dynamic /
 * llama3 / yarn, yarn's cos/sin attention factor, Qwen3's per-head q/k RMSNorm before RoPE, GQA,
 * causal attention inside packed documents with per-layer sliding windows (key j visible to
 * query i when i - W < j <= i), SwiGLU, tied or untied LM head, mean CE over a normalizer.
 * The backward is reverse mode over a tape of closures (each op accumulates into its inputs).
 * Test-only: must never import engine code beyond the types of its inputs.
 */

type Vec = Float64Array;

interface Node {
  v: Vec;
  g: Vec;
}

class Tape {
  private readonly steps: (() => void)[] = [];
  node(v: Vec): Node {
    return { v, g: new Float64Array(v.length) };
  }
  push(back: () => void): void {
    this.steps.push(back);
  }
  backward(): void {
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]!();
  }
}

type Hf = Record<string, unknown>;
const num = (hf: Hf, k: string, d: number): number => (hf[k] === undefined || hf[k] === null ? d : (hf[k] as number));

/** HF's defaults per model type, read independently of the engine's parser. */
function hfDefaults(mt: string): { maxPos: number; headDim?: number } {
  if (mt === 'llama') return { maxPos: 2048 };
  if (mt === 'qwen2') return { maxPos: 32768 };
  if (mt === 'qwen3') return { maxPos: 32768, headDim: 128 };
  if (mt === 'mistral') return { maxPos: 131072 };
  throw new Error(`reference: model_type ${mt}`);
}

export interface RefShape {
  modelType: string;
  D: number;
  I: number;
  L: number;
  H: number;
  Hkv: number;
  d: number;
  V: number;
  eps: number;
  tied: boolean;
  qkvBias: boolean;
  oBias: boolean;
  qkNorm: boolean;
  theta: number;
  maxPos: number;
  windows: number[];
}

export function refShape(hf: Hf): RefShape {
  const mt = hf.model_type as string;
  const def = hfDefaults(mt);
  const D = hf.hidden_size as number;
  const H = hf.num_attention_heads as number;
  const L = hf.num_hidden_layers as number;
  const bias = mt === 'llama' || mt === 'qwen3' ? hf.attention_bias === true : false;
  let windows = new Array<number>(L).fill(0);
  if (mt === 'mistral') {
    const w = hf.sliding_window === undefined ? 4096 : (hf.sliding_window as number | null);
    if (w) windows = windows.fill(w);
  } else if (mt === 'qwen2' || mt === 'qwen3') {
    const w = hf.sliding_window === undefined ? 4096 : (hf.sliding_window as number | null);
    const mwl = num(hf, 'max_window_layers', 28);
    const types = (hf.layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, i) => (i >= mwl ? 'sliding_attention' : 'full_attention'));
    if (hf.use_sliding_window === true && w) windows = types.map((t) => (t === 'sliding_attention' ? w : 0));
  }
  return {
    modelType: mt,
    D,
    I: hf.intermediate_size as number,
    L,
    H,
    Hkv: num(hf, 'num_key_value_heads', H),
    d: num(hf, 'head_dim', def.headDim ?? D / H),
    V: hf.vocab_size as number,
    eps: num(hf, 'rms_norm_eps', 1e-6),
    tied: hf.tie_word_embeddings === true,
    qkvBias: mt === 'qwen2' || bias,
    oBias: bias,
    qkNorm: mt === 'qwen3',
    theta: num(hf, 'rope_theta', 10000),
    maxPos: num(hf, 'max_position_embeddings', def.maxPos),
    windows,
  };
}

/**
 * HF's inverse frequencies [d/2] and cos/sin scale for a sequence whose largest position is
 * seqLen - 1 (modeling_rope_utils, in fp64).
 */
export function refRope(hf: Hf, s: RefShape, seqLen: number): { invFreq: number[]; scale: number } {
  const rs = (hf.rope_scaling ?? null) as Hf | null;
  const type = rs ? ((rs.rope_type ?? rs.type) as string) : 'default';
  const d = s.d;
  const base = (theta: number) => Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
  if (type === 'default') return { invFreq: base(s.theta), scale: 1 };
  const factor = rs!.factor as number;
  if (type === 'linear') return { invFreq: base(s.theta).map((f) => f / factor), scale: 1 };
  if (type === 'dynamic') {
    const len = Math.max(seqLen, s.maxPos);
    const theta = s.theta * ((factor * len) / s.maxPos - (factor - 1)) ** (d / (d - 2));
    return { invFreq: base(theta), scale: 1 };
  }
  if (type === 'llama3') {
    const low = rs!.low_freq_factor as number, high = rs!.high_freq_factor as number;
    const old = rs!.original_max_position_embeddings as number;
    const invFreq = base(s.theta).map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < old / high) return f;
      if (wavelen > old / low) return f / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
    return { invFreq, scale: 1 };
  }
  if (type === 'yarn') {
    const orig = ((rs!.original_max_position_embeddings as number | undefined) || s.maxPos) as number;
    const mscale = (x: number, m = 1) => (x <= 1 ? 1 : 0.1 * m * Math.log(x) + 1);
    let attn = rs!.attention_factor as number | undefined;
    if (attn === undefined) {
      const m = rs!.mscale as number | undefined, ma = rs!.mscale_all_dim as number | undefined;
      attn = m && ma ? mscale(factor, m) / mscale(factor, ma) : mscale(factor);
    }
    const betaFast = (rs!.beta_fast as number | undefined) || 32;
    const betaSlow = (rs!.beta_slow as number | undefined) || 1;
    const dimOf = (rot: number) => (d * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(s.theta));
    let lo = dimOf(betaFast), hi = dimOf(betaSlow);
    if (rs!.truncate !== false) {
      lo = Math.floor(lo);
      hi = Math.ceil(hi);
    }
    lo = Math.max(lo, 0);
    hi = Math.min(hi, d - 1);
    if (lo === hi) hi += 0.001;
    const invFreq = base(s.theta).map((f, i) => {
      const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      const extrapolation = 1 - ramp;
      return (f / factor) * (1 - extrapolation) + f * extrapolation;
    });
    return { invFreq, scale: attn };
  }
  throw new Error(`reference: rope type ${type}`);
}

export interface RefInput {
  tokens: Int32Array;
  labels: Int32Array;
  positions: Int32Array;
  /** positive lengths only (no padding in the reference) */
  docLens: number[];
  normalizer: number;
}

export interface RefResult {
  loss: number;
  tokenLoss: Float64Array;
  /** the logits [n, V], row-major */
  logits: Float64Array;
  /** dL/dparam per HF tensor name */
  grads: Map<string, Float64Array>;
}

/** Forward and backward of the HF decoder for parameters `param(name)` (HF names). */
export function hfDecoder(hf: Hf, param: (name: string) => Float32Array | Float64Array | undefined, x: RefInput): RefResult {
  const s = refShape(hf);
  const { D, I, H, Hkv, d, V, eps } = s;
  const n = x.tokens.length;
  const tape = new Tape();
  const params = new Map<string, Node>();
  const P = (name: string): Node => {
    let p = params.get(name);
    if (!p) {
      const w = param(name);
      if (!w) throw new Error(`reference: missing parameter ${name}`);
      p = tape.node(Float64Array.from(w));
      params.set(name, p);
    }
    return p;
  };
  const Popt = (name: string, on: boolean): Node | null => (on ? P(name) : null);

  const linear = (xin: Node, rows: number, inDim: number, W: Node, outDim: number, b: Node | null): Node => {
    const y = tape.node(new Float64Array(rows * outDim));
    for (let i = 0; i < rows; i++)
      for (let o = 0; o < outDim; o++) {
        let acc = b ? b.v[o]! : 0;
        for (let k = 0; k < inDim; k++) acc += xin.v[i * inDim + k]! * W.v[o * inDim + k]!;
        y.v[i * outDim + o] = acc;
      }
    tape.push(() => {
      for (let i = 0; i < rows; i++)
        for (let o = 0; o < outDim; o++) {
          const gy = y.g[i * outDim + o]!;
          if (gy === 0) continue;
          if (b) b.g[o] += gy;
          for (let k = 0; k < inDim; k++) {
            xin.g[i * inDim + k] += gy * W.v[o * inDim + k]!;
            W.g[o * inDim + k] += gy * xin.v[i * inDim + k]!;
          }
        }
    });
    return y;
  };

  const rms = (xin: Node, rows: number, dim: number, w: Node): Node => {
    const y = tape.node(new Float64Array(rows * dim));
    const r = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += xin.v[i * dim + j]! ** 2;
      r[i] = 1 / Math.sqrt(ss / dim + eps);
      for (let j = 0; j < dim; j++) y.v[i * dim + j] = xin.v[i * dim + j]! * r[i]! * w.v[j]!;
    }
    tape.push(() => {
      for (let i = 0; i < rows; i++) {
        let ux = 0;
        for (let j = 0; j < dim; j++) {
          const gy = y.g[i * dim + j]!;
          w.g[j] += gy * xin.v[i * dim + j]! * r[i]!;
          ux += gy * w.v[j]! * xin.v[i * dim + j]!;
        }
        const ri = r[i]!;
        for (let j = 0; j < dim; j++) xin.g[i * dim + j] += ri * y.g[i * dim + j]! * w.v[j]! - ri ** 3 * xin.v[i * dim + j]! * ux / dim;
      }
    });
    return y;
  };

  const add = (a: Node, b: Node): Node => {
    const y = tape.node(a.v.map((val, i) => val + b.v[i]!));
    tape.push(() => {
      for (let i = 0; i < y.g.length; i++) {
        a.g[i] += y.g[i]!;
        b.g[i] += y.g[i]!;
      }
    });
    return y;
  };

  // Rope: one table for the whole sequence (dynamic: its length is the largest position + 1).
  let maxPos = 0;
  for (const p of x.positions) maxPos = Math.max(maxPos, p + 1);
  const { invFreq, scale } = refRope(hf, s, maxPos);
  const half = d / 2;
  const cos = new Float64Array(n * half), sin = new Float64Array(n * half);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < half; j++) {
      const a = x.positions[i]! * invFreq[j]!;
      cos[i * half + j] = Math.cos(a) * scale;
      sin[i * half + j] = Math.sin(a) * scale;
    }
  const rope = (xin: Node, heads: number): Node => {
    const y = tape.node(new Float64Array(xin.v.length));
    for (let i = 0; i < n; i++)
      for (let h = 0; h < heads; h++)
        for (let j = 0; j < half; j++) {
          const o = (i * heads + h) * d, c = cos[i * half + j]!, sn = sin[i * half + j]!;
          const a = xin.v[o + j]!, b = xin.v[o + j + half]!;
          y.v[o + j] = a * c - b * sn;
          y.v[o + j + half] = b * c + a * sn;
        }
    tape.push(() => {
      for (let i = 0; i < n; i++)
        for (let h = 0; h < heads; h++)
          for (let j = 0; j < half; j++) {
            const o = (i * heads + h) * d, c = cos[i * half + j]!, sn = sin[i * half + j]!;
            const ga = y.g[o + j]!, gb = y.g[o + j + half]!;
            xin.g[o + j] += ga * c + gb * sn;
            xin.g[o + j + half] += -ga * sn + gb * c;
          }
    });
    return y;
  };

  const doc = new Int32Array(n);
  {
    let o = 0;
    x.docLens.forEach((len, k) => {
      for (let i = 0; i < len; i++) doc[o + i] = k;
      o += len;
    });
  }
  const attention = (q: Node, k: Node, v: Node, window: number): Node => {
    const out = tape.node(new Float64Array(n * H * d));
    const G = H / Hkv, sc = 1 / Math.sqrt(d);
    const probs: { js: number[]; p: number[] }[] = [];
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      for (let i = 0; i < n; i++) {
        const js: number[] = [];
        const p: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (doc[j] !== doc[i] || (window > 0 && !(j > i - window))) continue;
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q.v[(i * H + h) * d + e]! * k.v[(j * Hkv + kh) * d + e]!;
          js.push(j);
          p.push(dot * sc);
        }
        const mx = Math.max(...p);
        let z = 0;
        for (let a = 0; a < p.length; a++) z += p[a] = Math.exp(p[a]! - mx);
        for (let a = 0; a < p.length; a++) p[a]! /= z;
        for (let a = 0; a < p.length; a++)
          for (let e = 0; e < d; e++) out.v[(i * H + h) * d + e] += p[a]! * v.v[(js[a]! * Hkv + kh) * d + e]!;
        probs.push({ js, p });
      }
    }
    tape.push(() => {
      let idx = 0;
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / G);
        for (let i = 0; i < n; i++) {
          const { js, p } = probs[idx++]!;
          const qi = (i * H + h) * d;
          const dp = js.map((j) => {
            let g = 0;
            for (let e = 0; e < d; e++) g += out.g[qi + e]! * v.v[(j * Hkv + kh) * d + e]!;
            return g;
          });
          let Dsum = 0;
          for (let a = 0; a < p.length; a++) Dsum += p[a]! * dp[a]!;
          for (let a = 0; a < p.length; a++) {
            const kj = (js[a]! * Hkv + kh) * d;
            const ds = p[a]! * (dp[a]! - Dsum) * sc;
            for (let e = 0; e < d; e++) {
              v.g[kj + e] += p[a]! * out.g[qi + e]!;
              q.g[qi + e] += ds * k.v[kj + e]!;
              k.g[kj + e] += ds * q.v[qi + e]!;
            }
          }
        }
      }
    });
    return out;
  };

  const swiglu = (gate: Node, up: Node): Node => {
    const y = tape.node(gate.v.map((g, i) => (g / (1 + Math.exp(-g))) * up.v[i]!));
    tape.push(() => {
      for (let i = 0; i < y.g.length; i++) {
        const g = gate.v[i]!, sg = 1 / (1 + Math.exp(-g));
        up.g[i] += y.g[i]! * g * sg;
        gate.g[i] += y.g[i]! * up.v[i]! * sg * (1 + g * (1 - sg));
      }
    });
    return y;
  };

  // Embedding
  const E = P('model.embed_tokens.weight');
  let h = tape.node(new Float64Array(n * D));
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) h.v[i * D + j] = E.v[x.tokens[i]! * D + j]!;
  {
    const emb = h;
    tape.push(() => {
      for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) E.g[x.tokens[i]! * D + j] += emb.g[i * D + j]!;
    });
  }
  for (let l = 0; l < s.L; l++) {
    const p = `model.layers.${l}.`;
    const xn = rms(h, n, D, P(p + 'input_layernorm.weight'));
    let q = linear(xn, n, D, P(p + 'self_attn.q_proj.weight'), H * d, Popt(p + 'self_attn.q_proj.bias', s.qkvBias));
    let k = linear(xn, n, D, P(p + 'self_attn.k_proj.weight'), Hkv * d, Popt(p + 'self_attn.k_proj.bias', s.qkvBias));
    const v = linear(xn, n, D, P(p + 'self_attn.v_proj.weight'), Hkv * d, Popt(p + 'self_attn.v_proj.bias', s.qkvBias));
    if (s.qkNorm) {
      q = rms(q, n * H, d, P(p + 'self_attn.q_norm.weight'));
      k = rms(k, n * Hkv, d, P(p + 'self_attn.k_norm.weight'));
    }
    const att = attention(rope(q, H), rope(k, Hkv), v, s.windows[l]!);
    const o = linear(att, n, H * d, P(p + 'self_attn.o_proj.weight'), D, Popt(p + 'self_attn.o_proj.bias', s.oBias));
    const hres = add(h, o);
    const xn2 = rms(hres, n, D, P(p + 'post_attention_layernorm.weight'));
    const gate = linear(xn2, n, D, P(p + 'mlp.gate_proj.weight'), I, null);
    const up = linear(xn2, n, D, P(p + 'mlp.up_proj.weight'), I, null);
    const down = linear(swiglu(gate, up), n, I, P(p + 'mlp.down_proj.weight'), D, null);
    h = add(hres, down);
  }
  const hn = rms(h, n, D, P('model.norm.weight'));
  const logits = linear(hn, n, D, s.tied ? E : P('lm_head.weight'), V, null);
  const tokenLoss = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const lb = x.labels[i]!;
    if (lb < 0) continue;
    const row = logits.v.subarray(i * V, (i + 1) * V);
    const mx = Math.max(...row);
    let z = 0;
    for (const val of row) z += Math.exp(val - mx);
    const lse = mx + Math.log(z);
    tokenLoss[i] = lse - row[lb]!;
    loss += tokenLoss[i]! / x.normalizer;
    for (let c = 0; c < V; c++) logits.g[i * V + c] = (Math.exp(row[c]! - lse) - (c === lb ? 1 : 0)) / x.normalizer;
  }
  tape.backward();
  const grads = new Map<string, Float64Array>();
  for (const [name, node] of params) grads.set(name, node.g);
  return { loss, tokenLoss, logits: logits.v, grads };
}
