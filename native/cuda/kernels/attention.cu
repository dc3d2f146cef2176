// Flash attention on the GPU (FlashAttention-2's algorithm, REFERENCE §3), fp32, SIMT: correct
// first, fast second (tensor-core tiles are the next step). Same layouts and semantics as the CPU
// kernel (kernels/attention.h): causal or not, GQA, documents with padding runs, sliding window;
// fully masked rows give output 0, lse -inf and zero gradients, never NaN.
//
// Which keys a query sees comes from per-token ranges built on the host (attention_mask): query
// i sees keys [lo[i], hi[i]) and key j is seen by queries [qlo[j], qhi[j]), so one comparison per
// score masks documents, padding, causality and the window alike, and a tile loop visits only
// the key (query) blocks its rows (keys) can reach.
//
// Kernels (128 threads, a 16 x 8 grid of threads over each tile; head dim padded with zeros to
// the template's D = 64, 128 or 256):
//   forward: block = (query block, head); online softmax over the reachable key blocks.
//   backward: delta = rowsum(dout * out); dK/dV: block = (key block, kv head), looping over the
//   query heads of its GQA group and the query blocks that reach it, so dK and dV of a group stay
//   in one block (no atomics); dQ: block = (query block, head), recomputing P (no atomics).
// Memory is O(s): no [s, s] buffer. Deterministic: every sum has a fixed order.
#include <algorithm>
#include <cmath>

#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

AttnMaskHost attention_mask(const int32_t* doc_lens, int64_t ndocs, int64_t s, bool causal, int64_t window) {
  if (s < 0) throw ShapeError("attention: negative sequence length");
  if (window < 0) throw ShapeError("attention: window must be >= 0 (0: no sliding window)");
  if (window > 0 && !causal) throw ShapeError("attention: a sliding window needs causal attention");
  AttnMaskHost m;
  m.lo.assign(static_cast<size_t>(s), 0);
  m.hi.assign(static_cast<size_t>(s), 0);
  m.qlo.assign(static_cast<size_t>(s), 0);
  m.qhi.assign(static_cast<size_t>(s), 0);
  int64_t a = 0;
  auto doc = [&](int64_t len, bool pad) {
    if (a + len > s) return;
    const int64_t b = a + len;
    for (int64_t i = a; i < b && !pad; ++i) {
      const int64_t lo = window > 0 ? std::max(a, i - window + 1) : a;
      m.lo[i] = static_cast<int32_t>(lo);
      m.hi[i] = static_cast<int32_t>(causal ? i + 1 : b);
      m.qlo[i] = static_cast<int32_t>(causal ? i : a);
      m.qhi[i] = static_cast<int32_t>(window > 0 ? std::min(b, i + window) : b);
    }
    a = b;
  };
  int64_t sum = 0;
  if (ndocs <= 0 || !doc_lens) {
    sum = s;
    doc(s, false);
  } else {
    for (int64_t k = 0; k < ndocs; ++k) sum += doc_lens[k] < 0 ? -int64_t(doc_lens[k]) : doc_lens[k];
    if (sum == s)
      for (int64_t k = 0; k < ndocs; ++k) doc(doc_lens[k] < 0 ? -int64_t(doc_lens[k]) : doc_lens[k], doc_lens[k] < 0);
  }
  if (sum != s)
    throw ShapeError("attention: |doc_lens| sum to " + std::to_string(sum) + ", expected s = " + std::to_string(s));
  return m;
}

namespace {

constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Loads rows [r0, r0 + rows) of head h of x [s, heads, d] into sm [rows][ld], zero beyond s and d.
template <int D>
__device__ void LoadTile(float* sm, int ld, const float* x, int64_t r0, int rows, int64_t s, int64_t heads, int64_t h,
                         int64_t d) {
  for (int idx = threadIdx.x; idx < rows * D; idx += kThreads) {
    const int r = idx / D, c = idx - r * D;
    const int64_t t = r0 + r;
    sm[r * ld + c] = (t < s && c < d) ? x[(t * heads + h) * d + c] : 0.f;
  }
}

// [min lo, max hi) over the non-empty ranges of rows [r0, r0 + rows); empty: lo >= hi.
__device__ void RangeOf(int* out, const int32_t* lo, const int32_t* hi, int64_t r0, int rows, int64_t s) {
  if (threadIdx.x == 0) {
    int a = INT32_MAX, b = INT32_MIN;
    for (int r = 0; r < rows; ++r) {
      const int64_t t = r0 + r;
      if (t >= s || lo[t] >= hi[t]) continue;
      a = min(a, lo[t]);
      b = max(b, hi[t]);
    }
    out[0] = a;
    out[1] = b;
  }
  __syncthreads();
}

template <int D, int BR, int BC> struct FwdTile {
  static constexpr int RM = BR / 16, CN = BC / 8, DN = D / 8, LD = D + 1, LP = BC + 1;
  static constexpr int kFloats = BR * LD + BC * LD + BC * D + BR * LP;
};

template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(float* out, float* lse, const float* q, const float* k,
                                                               const float* v, AttnDims a, AttnMask m) {
  using T = FwdTile<D, BR, BC>;
  extern __shared__ float smem[];
  float* Qs = smem;
  float* Ks = Qs + BR * T::LD;
  float* Vs = Ks + BC * T::LD;
  float* Ps = Vs + BC * D;
  __shared__ int range[2];
  const int tid = threadIdx.x, rg = tid >> 3, cg = tid & 7;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * BR, h = blockIdx.y, g = h / (a.H / a.Hkv);
  const float sl = a.scale * kLog2e;

  LoadTile<D>(Qs, T::LD, q, q0, BR, a.s, a.H, h, a.d);
  RangeOf(range, m.lo, m.hi, q0, BR, a.s);
  float acc[T::RM][T::DN], mrow[T::RM], lrow[T::RM];
#pragma unroll
  for (int i = 0; i < T::RM; ++i) {
    mrow[i] = -INFINITY;
    lrow[i] = 0.f;
#pragma unroll
    for (int j = 0; j < T::DN; ++j) acc[i][j] = 0.f;
  }
  int lo_r[T::RM], hi_r[T::RM];
#pragma unroll
  for (int i = 0; i < T::RM; ++i) {
    const int64_t t = q0 + rg * T::RM + i;
    lo_r[i] = t < a.s ? m.lo[t] : 0;
    hi_r[i] = t < a.s ? m.hi[t] : 0;
  }
  const int kbeg = range[0] < range[1] ? (range[0] / BC) * BC : 0, kend = range[0] < range[1] ? range[1] : 0;
  for (int k0 = kbeg; k0 < kend; k0 += BC) {
    __syncthreads();  // the previous tile's readers are done
    LoadTile<D>(Ks, T::LD, k, k0, BC, a.s, a.Hkv, g, a.d);
    LoadTile<D>(Vs, D, v, k0, BC, a.s, a.Hkv, g, a.d);
    __syncthreads();
    float sc[T::RM][T::CN];
#pragma unroll
    for (int i = 0; i < T::RM; ++i)
#pragma unroll
      for (int j = 0; j < T::CN; ++j) sc[i][j] = 0.f;
#pragma unroll 4
    for (int c = 0; c < D; ++c) {
      float qv[T::RM], kv[T::CN];
#pragma unroll
      for (int i = 0; i < T::RM; ++i) qv[i] = Qs[(rg * T::RM + i) * T::LD + c];
#pragma unroll
      for (int j = 0; j < T::CN; ++j) kv[j] = Ks[(cg + 8 * j) * T::LD + c];
#pragma unroll
      for (int i = 0; i < T::RM; ++i)
#pragma unroll
        for (int j = 0; j < T::CN; ++j) sc[i][j] = fmaf(qv[i], kv[j], sc[i][j]);
    }
#pragma unroll
    for (int i = 0; i < T::RM; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < T::CN; ++j) {
        const int key = k0 + cg + 8 * j;
        sc[i][j] = (key >= lo_r[i] && key < hi_r[i]) ? sc[i][j] * sl : -INFINITY;
        mx = fmaxf(mx, sc[i][j]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      const float mnew = fmaxf(mrow[i], mx);
      float sum = 0.f;
      if (mnew == -INFINITY) {
#pragma unroll
        for (int j = 0; j < T::CN; ++j) sc[i][j] = 0.f;
      } else {
        const float alpha = exp2f(mrow[i] - mnew);  // 0 when the row had no key yet
#pragma unroll
        for (int j = 0; j < T::CN; ++j) {
          sc[i][j] = exp2f(sc[i][j] - mnew);
          sum += sc[i][j];
        }
#pragma unroll
        for (int j = 0; j < T::DN; ++j) acc[i][j] *= alpha;
        lrow[i] *= alpha;
        mrow[i] = mnew;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      sum += __shfl_xor_sync(0xffffffffu, sum, 4);
      lrow[i] += sum;
#pragma unroll
      for (int j = 0; j < T::CN; ++j) Ps[(rg * T::RM + i) * T::LP + cg + 8 * j] = sc[i][j];
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < BC; ++kk) {
      float pv[T::RM];
#pragma unroll
      for (int i = 0; i < T::RM; ++i) pv[i] = Ps[(rg * T::RM + i) * T::LP + kk];
#pragma unroll
      for (int j = 0; j < T::DN; ++j) {
        const float vv = Vs[kk * D + cg + 8 * j];
#pragma unroll
        for (int i = 0; i < T::RM; ++i) acc[i][j] = fmaf(pv[i], vv, acc[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < T::RM; ++i) {
    const int64_t t = q0 + rg * T::RM + i;
    if (t >= a.s) continue;
    const bool any = lrow[i] > 0.f;
    const float inv = any ? 1.f / lrow[i] : 0.f;
#pragma unroll
    for (int j = 0; j < T::DN; ++j) {
      const int c = cg + 8 * j;
      if (c < a.d) out[(t * a.H + h) * a.d + c] = acc[i][j] * inv;
    }
    if (cg == 0) lse[h * a.s + t] = any ? (mrow[i] + log2f(lrow[i])) * kLn2 : -INFINITY;
  }
}

// delta[h, t] = sum_c dout[t, h, c] * out[t, h, c]: one warp per (t, h).
__global__ void DeltaKernel(float* delta, const float* dout, const float* out, AttnDims a) {
  const int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + (threadIdx.x >> 5);
  if (w >= a.s * a.H) return;
  const int64_t t = w / a.H, h = w - t * a.H;
  const float *po = out + (t * a.H + h) * a.d, *pd = dout + (t * a.H + h) * a.d;
  float sum = 0.f;
  for (int64_t c = threadIdx.x & 31; c < a.d; c += 32) sum = fmaf(po[c], pd[c], sum);
  sum = warp_sum(sum);
  if ((threadIdx.x & 31) == 0) delta[h * a.s + t] = sum;
}

template <int D, int BR, int BC> struct KvTile {
  static constexpr int KM = BC / 16, QN = BR / 8, DN = D / 8, LD = D + 1, LP = BR + 1;
  static constexpr int kFloats = 2 * BC * LD + 2 * BR * LD + BC * LP + 2 * BR;
};

template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads) FlashBackwardKvKernel(float* dk, float* dv, const float* dout, const float* q,
                                                                  const float* k, const float* v, const float* lse,
                                                                  const float* delta, AttnDims a, AttnMask m) {
  using T = KvTile<D, BR, BC>;
  extern __shared__ float smem[];
  float* Ks = smem;
  float* Vs = Ks + BC * T::LD;
  float* Qs = Vs + BC * T::LD;
  float* Os = Qs + BR * T::LD;  // dout tile
  float* Ps = Os + BR * T::LD;  // [BC][BR]: P, then dS
  float* Ls = Ps + BC * T::LP;
  float* Ds = Ls + BR;
  __shared__ int range[2];
  const int tid = threadIdx.x, kg = tid >> 3, qg = tid & 7;
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * BC, g = blockIdx.y, G = a.H / a.Hkv;
  const float sl = a.scale * kLog2e;

  LoadTile<D>(Ks, T::LD, k, k0, BC, a.s, a.Hkv, g, a.d);
  LoadTile<D>(Vs, T::LD, v, k0, BC, a.s, a.Hkv, g, a.d);
  RangeOf(range, m.qlo, m.qhi, k0, BC, a.s);
  float dK[T::KM][T::DN], dV[T::KM][T::DN];
#pragma unroll
  for (int i = 0; i < T::KM; ++i)
#pragma unroll
    for (int j = 0; j < T::DN; ++j) dK[i][j] = dV[i][j] = 0.f;
  const int qbeg = range[0] < range[1] ? (range[0] / BR) * BR : 0, qend = range[0] < range[1] ? range[1] : 0;
  for (int64_t hh = 0; hh < G; ++hh) {
    const int64_t h = g * G + hh;
    for (int i0 = qbeg; i0 < qend; i0 += BR) {
      __syncthreads();
      LoadTile<D>(Qs, T::LD, q, i0, BR, a.s, a.H, h, a.d);
      LoadTile<D>(Os, T::LD, dout, i0, BR, a.s, a.H, h, a.d);
      for (int r = tid; r < BR; r += kThreads) {
        const int64_t t = i0 + r;
        Ls[r] = t < a.s ? lse[h * a.s + t] * kLog2e : -INFINITY;
        Ds[r] = t < a.s ? delta[h * a.s + t] : 0.f;
      }
      __syncthreads();
      // P^T[key][query] = exp2(sl * k.q - L) where the query sees the key
      {
        float st[T::KM][T::QN];
#pragma unroll
        for (int i = 0; i < T::KM; ++i)
#pragma unroll
          for (int j = 0; j < T::QN; ++j) st[i][j] = 0.f;
#pragma unroll 4
        for (int c = 0; c < D; ++c) {
          float kv[T::KM], qv[T::QN];
#pragma unroll
          for (int i = 0; i < T::KM; ++i) kv[i] = Ks[(kg * T::KM + i) * T::LD + c];
#pragma unroll
          for (int j = 0; j < T::QN; ++j) qv[j] = Qs[(qg + 8 * j) * T::LD + c];
#pragma unroll
          for (int i = 0; i < T::KM; ++i)
#pragma unroll
            for (int j = 0; j < T::QN; ++j) st[i][j] = fmaf(kv[i], qv[j], st[i][j]);
        }
#pragma unroll
        for (int i = 0; i < T::KM; ++i) {
          const int64_t key = k0 + kg * T::KM + i;
          const int ql = key < a.s ? m.qlo[key] : 0, qh = key < a.s ? m.qhi[key] : 0;
#pragma unroll
          for (int j = 0; j < T::QN; ++j) {
            const int qi = i0 + qg + 8 * j;
            const float p = (qi >= ql && qi < qh) ? exp2f(st[i][j] * sl - Ls[qg + 8 * j]) : 0.f;
            Ps[(kg * T::KM + i) * T::LP + qg + 8 * j] = p;
          }
        }
      }
      __syncthreads();
      // dV += P^T dO
#pragma unroll 4
      for (int r = 0; r < BR; ++r) {
        float pv[T::KM];
#pragma unroll
        for (int i = 0; i < T::KM; ++i) pv[i] = Ps[(kg * T::KM + i) * T::LP + r];
#pragma unroll
        for (int j = 0; j < T::DN; ++j) {
          const float ov = Os[r * T::LD + qg + 8 * j];
#pragma unroll
          for (int i = 0; i < T::KM; ++i) dV[i][j] = fmaf(pv[i], ov, dV[i][j]);
        }
      }
      // dP^T = V dO^T, then dS^T = P^T (dP^T - delta)
      float dst[T::KM][T::QN];
#pragma unroll
      for (int i = 0; i < T::KM; ++i)
#pragma unroll
        for (int j = 0; j < T::QN; ++j) dst[i][j] = 0.f;
#pragma unroll 4
      for (int c = 0; c < D; ++c) {
        float vv[T::KM], ov[T::QN];
#pragma unroll
        for (int i = 0; i < T::KM; ++i) vv[i] = Vs[(kg * T::KM + i) * T::LD + c];
#pragma unroll
        for (int j = 0; j < T::QN; ++j) ov[j] = Os[(qg + 8 * j) * T::LD + c];
#pragma unroll
        for (int i = 0; i < T::KM; ++i)
#pragma unroll
          for (int j = 0; j < T::QN; ++j) dst[i][j] = fmaf(vv[i], ov[j], dst[i][j]);
      }
      __syncthreads();  // every thread has read P for dV
#pragma unroll
      for (int i = 0; i < T::KM; ++i)
#pragma unroll
        for (int j = 0; j < T::QN; ++j) {
          float* p = &Ps[(kg * T::KM + i) * T::LP + qg + 8 * j];
          *p = *p * (dst[i][j] - Ds[qg + 8 * j]);
        }
      __syncthreads();
      // dK += dS^T Q (times the scale, at the end)
#pragma unroll 4
      for (int r = 0; r < BR; ++r) {
        float sv[T::KM];
#pragma unroll
        for (int i = 0; i < T::KM; ++i) sv[i] = Ps[(kg * T::KM + i) * T::LP + r];
#pragma unroll
        for (int j = 0; j < T::DN; ++j) {
          const float qv = Qs[r * T::LD + qg + 8 * j];
#pragma unroll
          for (int i = 0; i < T::KM; ++i) dK[i][j] = fmaf(sv[i], qv, dK[i][j]);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < T::KM; ++i) {
    const int64_t key = k0 + kg * T::KM + i;
    if (key >= a.s) continue;
#pragma unroll
    for (int j = 0; j < T::DN; ++j) {
      const int c = qg + 8 * j;
      if (c >= a.d) continue;
      const int64_t o = (key * a.Hkv + g) * a.d + c;
      dk[o] += a.scale * dK[i][j];
      dv[o] += dV[i][j];
    }
  }
}

template <int D, int BR, int BC> struct QTile {
  static constexpr int RM = BR / 16, CN = BC / 8, DN = D / 8, LD = D + 1, LP = BC + 1;
  static constexpr int kFloats = 2 * BR * LD + 2 * BC * LD + BR * LP + 2 * BR;
};

template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads) FlashBackwardQKernel(float* dq, const float* dout, const float* q,
                                                                 const float* k, const float* v, const float* lse,
                                                                 const float* delta, AttnDims a, AttnMask m) {
  using T = QTile<D, BR, BC>;
  extern __shared__ float smem[];
  float* Qs = smem;
  float* Os = Qs + BR * T::LD;
  float* Ks = Os + BR * T::LD;
  float* Vs = Ks + BC * T::LD;
  float* Ps = Vs + BC * T::LD;  // dS [BR][BC]
  float* Ls = Ps + BR * T::LP;
  float* Ds = Ls + BR;
  __shared__ int range[2];
  const int tid = threadIdx.x, rg = tid >> 3, cg = tid & 7;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * BR, h = blockIdx.y, g = h / (a.H / a.Hkv);
  const float sl = a.scale * kLog2e;

  LoadTile<D>(Qs, T::LD, q, q0, BR, a.s, a.H, h, a.d);
  LoadTile<D>(Os, T::LD, dout, q0, BR, a.s, a.H, h, a.d);
  for (int r = tid; r < BR; r += kThreads) {
    const int64_t t = q0 + r;
    Ls[r] = t < a.s ? lse[h * a.s + t] * kLog2e : -INFINITY;
    Ds[r] = t < a.s ? delta[h * a.s + t] : 0.f;
  }
  RangeOf(range, m.lo, m.hi, q0, BR, a.s);
  int lo_r[T::RM], hi_r[T::RM];
#pragma unroll
  for (int i = 0; i < T::RM; ++i) {
    const int64_t t = q0 + rg * T::RM + i;
    lo_r[i] = t < a.s ? m.lo[t] : 0;
    hi_r[i] = t < a.s ? m.hi[t] : 0;
  }
  float dQ[T::RM][T::DN];
#pragma unroll
  for (int i = 0; i < T::RM; ++i)
#pragma unroll
    for (int j = 0; j < T::DN; ++j) dQ[i][j] = 0.f;
  const int kbeg = range[0] < range[1] ? (range[0] / BC) * BC : 0, kend = range[0] < range[1] ? range[1] : 0;
  for (int k0 = kbeg; k0 < kend; k0 += BC) {
    __syncthreads();
    LoadTile<D>(Ks, T::LD, k, k0, BC, a.s, a.Hkv, g, a.d);
    LoadTile<D>(Vs, T::LD, v, k0, BC, a.s, a.Hkv, g, a.d);
    __syncthreads();
    float p[T::RM][T::CN], dp[T::RM][T::CN];
#pragma unroll
    for (int i = 0; i < T::RM; ++i)
#pragma unroll
      for (int j = 0; j < T::CN; ++j) p[i][j] = dp[i][j] = 0.f;
#pragma unroll 4
    for (int c = 0; c < D; ++c) {
      float qv[T::RM], ov[T::RM], kv[T::CN], vv[T::CN];
#pragma unroll
      for (int i = 0; i < T::RM; ++i) {
        qv[i] = Qs[(rg * T::RM + i) * T::LD + c];
        ov[i] = Os[(rg * T::RM + i) * T::LD + c];
      }
#pragma unroll
      for (int j = 0; j < T::CN; ++j) {
        kv[j] = Ks[(cg + 8 * j) * T::LD + c];
        vv[j] = Vs[(cg + 8 * j) * T::LD + c];
      }
#pragma unroll
      for (int i = 0; i < T::RM; ++i)
#pragma unroll
        for (int j = 0; j < T::CN; ++j) {
          p[i][j] = fmaf(qv[i], kv[j], p[i][j]);
          dp[i][j] = fmaf(ov[i], vv[j], dp[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < T::RM; ++i) {
      const int r = rg * T::RM + i;
#pragma unroll
      for (int j = 0; j < T::CN; ++j) {
        const int key = k0 + cg + 8 * j;
        const float pr = (key >= lo_r[i] && key < hi_r[i]) ? exp2f(p[i][j] * sl - Ls[r]) : 0.f;
        Ps[r * T::LP + cg + 8 * j] = pr * (dp[i][j] - Ds[r]);
      }
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < BC; ++kk) {
      float sv[T::RM];
#pragma unroll
      for (int i = 0; i < T::RM; ++i) sv[i] = Ps[(rg * T::RM + i) * T::LP + kk];
#pragma unroll
      for (int j = 0; j < T::DN; ++j) {
        const float kv = Ks[kk * T::LD + cg + 8 * j];
#pragma unroll
        for (int i = 0; i < T::RM; ++i) dQ[i][j] = fmaf(sv[i], kv, dQ[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < T::RM; ++i) {
    const int64_t t = q0 + rg * T::RM + i;
    if (t >= a.s) continue;
#pragma unroll
    for (int j = 0; j < T::DN; ++j) {
      const int c = cg + 8 * j;
      if (c < a.d) dq[(t * a.H + h) * a.d + c] += a.scale * dQ[i][j];
    }
  }
}

template <typename K> void AllowSmem(K kernel, int floats) {
  UA_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, floats * static_cast<int>(sizeof(float))));
}

template <int D, int BR, int BC>
void Forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnDims& a, const AttnMask& m,
             cudaStream_t s) {
  constexpr int floats = FwdTile<D, BR, BC>::kFloats;
  auto kern = FlashForwardKernel<D, BR, BC>;
  AllowSmem(kern, floats);
  const dim3 grid(static_cast<unsigned>(ceil_div(a.s, BR)), static_cast<unsigned>(a.H));
  kern<<<grid, kThreads, floats * sizeof(float), s>>>(out, lse, q, k, v, a, m);
  UA_LAUNCHED("flash_forward");
}

template <int D, int BR, int BC, int KBR, int KBC>
void Backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
              const float* lse, const float* delta, const AttnDims& a, const AttnMask& m, cudaStream_t s) {
  constexpr int kv_floats = KvTile<D, KBR, KBC>::kFloats, q_floats = QTile<D, BR, BC>::kFloats;
  auto kv = FlashBackwardKvKernel<D, KBR, KBC>;
  auto qk = FlashBackwardQKernel<D, BR, BC>;
  AllowSmem(kv, kv_floats);
  AllowSmem(qk, q_floats);
  kv<<<dim3(static_cast<unsigned>(ceil_div(a.s, KBC)), static_cast<unsigned>(a.Hkv)), kThreads, kv_floats * sizeof(float),
       s>>>(dk, dv, dout, q, k, v, lse, delta, a, m);
  UA_LAUNCHED("flash_backward dk dv");
  qk<<<dim3(static_cast<unsigned>(ceil_div(a.s, BR)), static_cast<unsigned>(a.H)), kThreads, q_floats * sizeof(float), s>>>(
      dq, dout, q, k, v, lse, delta, a, m);
  UA_LAUNCHED("flash_backward dq");
}

void Check(const AttnDims& a, const char* who) {
  if (a.s < 0 || a.H <= 0 || a.Hkv <= 0 || a.d <= 0 || a.H % a.Hkv != 0)
    throw ShapeError(std::string(who) + ": need s >= 0, H, Hkv, d > 0 and H % Hkv == 0 (got s=" + std::to_string(a.s) +
                     " H=" + std::to_string(a.H) + " Hkv=" + std::to_string(a.Hkv) + " d=" + std::to_string(a.d) + ")");
  if (a.d > kMaxHeadDim)
    throw ShapeError(std::string(who) + ": head dim " + std::to_string(a.d) + " exceeds the CUDA kernels' " +
                     std::to_string(kMaxHeadDim));
  if (a.s >= (int64_t(1) << 31)) throw ShapeError(std::string(who) + ": sequence of 2^31 tokens or more");
}

}  // namespace

void flash_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnDims& a,
                   const AttnMask& m, cudaStream_t s) {
  Check(a, "flash_forward");
  if (a.s == 0) return;
  if (a.d <= 64) Forward<64, 64, 64>(out, lse, q, k, v, a, m, s);
  else if (a.d <= 128) Forward<128, 64, 64>(out, lse, q, k, v, a, m, s);
  else Forward<256, 32, 64>(out, lse, q, k, v, a, m, s);
}

void flash_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
                    const float* out, const float* lse, const AttnDims& a, const AttnMask& m, float* delta,
                    cudaStream_t s) {
  Check(a, "flash_backward");
  if (a.s == 0) return;
  const int64_t rows = a.s * a.H;
  DeltaKernel<<<static_cast<unsigned>(ceil_div(rows, 8)), 256, 0, s>>>(delta, dout, out, a);
  UA_LAUNCHED("flash_backward delta");
  if (a.d <= 64) Backward<64, 64, 64, 64, 64>(dq, dk, dv, dout, q, k, v, lse, delta, a, m, s);
  else if (a.d <= 128) Backward<128, 64, 64, 64, 32>(dq, dk, dv, dout, q, k, v, lse, delta, a, m, s);
  else Backward<256, 32, 32, 32, 16>(dq, dk, dv, dout, q, k, v, lse, delta, a, m, s);
}

}  // namespace ua::cuda
