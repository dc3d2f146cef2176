// Every CUDA kernel as an op over host buffers (api.h run_op), named and laid out like the CPU
// binding of the same name (nativeBinding.ts), so a test runs one input through both engines.
// Each op declares its buffers (type, expected count from the scalars, optional, written) and a
// body over device copies; run_op uploads every present buffer, runs the body on a fresh stream,
// downloads the written ones and synchronizes. Also the library report and the cuBLAS bf16 rate.
// Test plumbing, never on a training path: it allocates per call.
#include <cmath>
#include <functional>
#include <map>

#include "cuda/api.h"
#include "cuda/blas.cuh"
#include "cuda/comm/device_group.cuh"
#include "cuda/layers.cuh"
#include "device/dynlib.h"
#include "kernels/lm_head_ce.h"

namespace ua::cuda {

namespace {

using Scalars = std::vector<double>;

struct Ctx {
  cudaStream_t s;
  Blas& blas;
  std::vector<void*> dev;           // device copies (nullptr where absent)
  std::vector<HostBuf> host;
  const Scalars& sc;
  template <typename T> T* d(size_t i) const { return static_cast<T*>(dev[i]); }
  bool has(size_t i) const { return dev[i] != nullptr; }
  int64_t i64(size_t k) const { return static_cast<int64_t>(sc[k]); }
};

struct Buf {
  HostType type;
  bool optional, written;
};

struct OpDef {
  std::vector<Buf> bufs;
  size_t scalars;
  std::function<std::vector<int64_t>(const Scalars&)> counts;  // -1: any length
  std::function<std::vector<double>(Ctx&)> run;
};

constexpr Buf F(bool written = false) { return {HostType::kF32, false, written}; }
constexpr Buf Fo(bool written = false) { return {HostType::kF32, true, written}; }
constexpr Buf I() { return {HostType::kI32, false, false}; }
constexpr Buf Io(bool written = false) { return {HostType::kI32, true, written}; }

int64_t I64(double v) { return static_cast<int64_t>(v); }

AttnDims Dims(const Scalars& sc) {
  AttnDims a;
  a.s = I64(sc[0]), a.H = I64(sc[1]), a.Hkv = I64(sc[2]), a.d = I64(sc[3]);
  a.scale = sc[5] != 0 ? static_cast<float>(sc[5]) : static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.d)));
  return a;
}

// The mask of (docLens at buffer `i`, s, causal, window) uploaded into `m`.
AttnMask Mask(Ctx& c, DeviceMask& m, size_t i) {
  const HostBuf& docs = c.host[i];
  const AttnMaskHost h = attention_mask(static_cast<const int32_t*>(docs.data), docs.data ? docs.count : 0, c.i64(0),
                                        c.sc[4] != 0, c.i64(6));
  m.upload(h, c.s);
  return m.view();
}

void CheckLabels(const HostBuf& labels, int64_t vocab) {
  const auto* l = static_cast<const int32_t*>(labels.data);
  for (int64_t i = 0; i < labels.count; ++i)
    if (l[i] >= vocab)
      throw ShapeError("lm head: label " + std::to_string(l[i]) + " at token " + std::to_string(i) + " is >= vocab " +
                       std::to_string(vocab));
}

std::vector<OptimSpan> OptimSpans(const HostBuf& table, int64_t k) {
  const auto* t = static_cast<const double*>(table.data);
  std::vector<OptimSpan> spans(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    const double* r = t + i * 6;
    spans[i].offset = I64(r[0]), spans[i].numel = I64(r[1]), spans[i].rows = I64(r[2]), spans[i].cols = I64(r[3]);
    spans[i].centralize = (I64(r[4]) & 1) != 0;
    spans[i].decay = (I64(r[4]) & 2) != 0;
    spans[i].noise_tensor = static_cast<uint64_t>(r[5]);
  }
  return spans;
}

const std::map<std::string, OpDef>& Ops() {
  static const std::map<std::string, OpDef> ops = {
      // C, A, B; M, N, K, transA, transB, alpha, beta (operands exactly their matrices)
      {"matmul", {{F(true), F(), F()}, 7, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0] * s[1]), I64(s[0] * s[2]), I64(s[2] * s[1])}; },
       [](Ctx& c) {
         const int64_t M = c.i64(0), N = c.i64(1), K = c.i64(2);
         const bool ta = c.sc[3] != 0, tb = c.sc[4] != 0;
         c.blas.gemm(c.d<float>(0), N, c.dev[1], ta ? M : K, c.dev[2], tb ? K : N, M, N, K, ta, tb,
                     static_cast<float>(c.sc[5]), static_cast<float>(c.sc[6]), Precision::kF32);
         return std::vector<double>{}; }}},
      {"matmulBf16", {{F(true), {HostType::kU16, false, false}, {HostType::kU16, false, false}}, 7, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0] * s[1]), I64(s[0] * s[2]), I64(s[2] * s[1])}; },
       [](Ctx& c) {
         const int64_t M = c.i64(0), N = c.i64(1), K = c.i64(2);
         const bool ta = c.sc[3] != 0, tb = c.sc[4] != 0;
         c.blas.gemm(c.d<float>(0), N, c.dev[1], ta ? M : K, c.dev[2], tb ? K : N, M, N, K, ta, tb,
                     static_cast<float>(c.sc[5]), static_cast<float>(c.sc[6]), Precision::kBF16);
         return std::vector<double>{}; }}},
      {"f32ToBf16", {{{HostType::kU16, false, true}, F()}, 1, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0]), I64(s[0])}; },
       [](Ctx& c) { f32_to_bf16(c.d<__nv_bfloat16>(0), c.d<float>(1), c.i64(0), c.s); return std::vector<double>{}; }}},
      // y, ids, table; n, vocab, dim
      {"embeddingForward", {{F(true), I(), F()}, 3, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0] * s[2]), I64(s[0]), I64(s[1] * s[2])}; },
       [](Ctx& c) {
         embedding_plan(static_cast<const int32_t*>(c.host[1].data), c.i64(0), c.i64(1));  // validates the ids
         embedding_forward(c.d<float>(0), c.d<int32_t>(1), c.d<float>(2), c.i64(0), c.i64(2), c.s);
         return std::vector<double>{}; }}},
      // dtable, dy, ids; n, vocab, dim
      {"embeddingBackward", {{F(true), F(), I()}, 3, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[1] * s[2]), I64(s[0] * s[2]), I64(s[0])}; },
       [](Ctx& c) {
         const EmbeddingPlan p = embedding_plan(static_cast<const int32_t*>(c.host[2].data), c.i64(0), c.i64(1));
         DeviceArray<int32_t> u, o, t;
         u.upload(p.ids.data(), static_cast<int64_t>(p.ids.size()), c.s);
         o.upload(p.offsets.data(), static_cast<int64_t>(p.offsets.size()), c.s);
         t.upload(p.tokens.data(), static_cast<int64_t>(p.tokens.size()), c.s);
         embedding_backward(c.d<float>(0), c.d<float>(1), u.get(), o.get(), t.get(), static_cast<int64_t>(p.ids.size()),
                            c.i64(2), c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));  // the plan's arrays die here
         return std::vector<double>{}; }}},
      // y, rstd, x, w; n, dim, eps
      {"rmsnormForward", {{F(true), F(true), F(), F()}, 3, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0] * s[1]), I64(s[0]), I64(s[0] * s[1]), I64(s[1])}; },
       [](Ctx& c) {
         rmsnorm_forward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.i64(0), c.i64(1),
                         static_cast<float>(c.sc[2]), c.s);
         return std::vector<double>{}; }}},
      // dx|null, dw|null, dy, x, w, rstd; n, dim
      {"rmsnormBackward", {{Fo(true), Fo(true), F(), F(), F(), F()}, 2, [](const Scalars& s) {
         const int64_t n = I64(s[0]), d = I64(s[1]);
         return std::vector<int64_t>{n * d, d, n * d, n * d, d, n}; },
       [](Ctx& c) {
         DeviceArray<double> scratch(rmsnorm_scratch(c.i64(0), c.i64(1)));
         rmsnorm_backward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.d<float>(4), c.d<float>(5),
                          c.i64(0), c.i64(1), scratch.get(), c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));
         return std::vector<double>{}; }}},
      // x (in place), pos, invFreq (f64 [d/2]); n, heads, d, scale, inverse
      {"ropeTable", {{F(true), I(), {HostType::kF64, false, false}}, 5, [](const Scalars& s) {
         return std::vector<int64_t>{I64(s[0] * s[1] * s[2]), I64(s[0]), I64(s[2]) / 2}; },
       [](Ctx& c) {
         rope_apply(c.d<float>(0), c.d<int32_t>(1), c.i64(0), c.i64(1), c.i64(2), c.d<double>(2), c.sc[3], c.sc[4] != 0, c.s);
         return std::vector<double>{}; }}},
      // out, gate, up; count
      {"swigluForward", {{F(true), F(), F()}, 1, [](const Scalars& s) {
         return std::vector<int64_t>(3, I64(s[0])); },
       [](Ctx& c) { swiglu_forward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.i64(0), c.s); return std::vector<double>{}; }}},
      // dgate|null, dup|null, dout, gate, up; count
      {"swigluBackward", {{Fo(true), Fo(true), F(), F(), F()}, 1, [](const Scalars& s) {
         return std::vector<int64_t>(5, I64(s[0])); },
       [](Ctx& c) {
         swiglu_backward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.d<float>(4), c.i64(0), c.s);
         return std::vector<double>{}; }}},
      // y, a, b; count
      {"residualForward", {{F(true), F(), F()}, 1, [](const Scalars& s) {
         return std::vector<int64_t>(3, I64(s[0])); },
       [](Ctx& c) { add(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.i64(0), c.s); return std::vector<double>{}; }}},
      // da|null, db|null, dy; count
      {"residualBackward", {{Fo(true), Fo(true), F()}, 1, [](const Scalars& s) {
         return std::vector<int64_t>(3, I64(s[0])); },
       [](Ctx& c) {
         if (c.has(0)) add_into(c.d<float>(0), c.d<float>(2), c.i64(0), c.s);
         if (c.has(1)) add_into(c.d<float>(1), c.d<float>(2), c.i64(0), c.s);
         return std::vector<double>{}; }}},
      // y, x, W, b|null; n, in, out
      {"linearForward", {{F(true), F(), F(), Fo()}, 3, [](const Scalars& s) {
         const int64_t n = I64(s[0]), in = I64(s[1]), out = I64(s[2]);
         return std::vector<int64_t>{n * out, n * in, out * in, out}; },
       [](Ctx& c) {
         const int64_t n = c.i64(0), in = c.i64(1), out = c.i64(2);
         if (c.has(3)) fill_rows(c.d<float>(0), c.d<float>(3), n, out, c.s);
         c.blas.gemm(c.d<float>(0), out, c.dev[1], in, c.dev[2], in, n, out, in, false, true, 1.f, c.has(3) ? 1.f : 0.f,
                     Precision::kF32);
         return std::vector<double>{}; }}},
      // dx|null, dW|null, db|null, dy, x, W; n, in, out
      {"linearBackward", {{Fo(true), Fo(true), Fo(true), F(), F(), F()}, 3, [](const Scalars& s) {
         const int64_t n = I64(s[0]), in = I64(s[1]), out = I64(s[2]);
         return std::vector<int64_t>{n * in, out * in, out, n * out, n * in, out * in}; },
       [](Ctx& c) {
         const int64_t n = c.i64(0), in = c.i64(1), out = c.i64(2);
         if (c.has(0)) c.blas.gemm(c.d<float>(0), in, c.dev[3], out, c.dev[5], in, n, in, out, false, false, 1.f, 1.f, Precision::kF32);
         if (c.has(1)) c.blas.gemm(c.d<float>(1), in, c.dev[3], out, c.dev[4], in, out, in, n, true, false, 1.f, 1.f, Precision::kF32);
         DeviceArray<double> scratch(column_sum_scratch(n, out));
         if (c.has(2)) column_sum_into(c.d<float>(2), c.d<float>(3), n, out, scratch.get(), c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));
         return std::vector<double>{}; }}},
      // out, lse, q, k, v, docLens|null; s, H, Hkv, d, causal, scale, window
      {"flashAttentionForward", {{F(true), F(true), F(), F(), F(), Io()}, 7, [](const Scalars& s) {
         const int64_t n = I64(s[0]), H = I64(s[1]), Hkv = I64(s[2]), d = I64(s[3]);
         return std::vector<int64_t>{n * H * d, H * n, n * H * d, n * Hkv * d, n * Hkv * d, -1}; },
       [](Ctx& c) {
         DeviceMask m;
         const AttnMask mv = Mask(c, m, 5);
         flash_forward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.d<float>(4), Dims(c.sc), mv, c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));
         return std::vector<double>{}; }}},
      // dq, dk, dv, dout, q, k, v, out, lse, docLens|null; s, H, Hkv, d, causal, scale, window
      {"flashAttentionBackward", {{F(true), F(true), F(true), F(), F(), F(), F(), F(), F(), Io()}, 7, [](const Scalars& s) {
         const int64_t n = I64(s[0]), H = I64(s[1]), Hkv = I64(s[2]), d = I64(s[3]);
         const int64_t q = n * H * d, kv = n * Hkv * d;
         return std::vector<int64_t>{q, kv, kv, q, q, kv, kv, q, H * n, -1}; },
       [](Ctx& c) {
         DeviceMask m;
         const AttnMask mv = Mask(c, m, 9);
         const AttnDims a = Dims(c.sc);
         DeviceArray<float> delta(a.H * a.s);
         flash_backward(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.d<float>(4), c.d<float>(5),
                        c.d<float>(6), c.d<float>(7), c.d<float>(8), a, mv, delta.get(), c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));
         return std::vector<double>{}; }}},
      // tokenLoss|null, lse|null, h, W, labels, argmax|null; n, dim, vocab, normalizer -> [loss, valid]
      {"lmHeadCeForward", {{Fo(true), Fo(true), F(), F(), I(), Io(true)}, 4, [](const Scalars& s) {
         const int64_t n = I64(s[0]), dim = I64(s[1]), V = I64(s[2]);
         return std::vector<int64_t>{n, n, n * dim, V * dim, n, n}; },
       [](Ctx& c) {
         const int64_t n = c.i64(0), dim = c.i64(1), V = c.i64(2);
         CheckLabels(c.host[4], V);
         DeviceArray<float> loss(n), lse(n);
         LmHead head;
         head.forward(c.blas, loss.get(), lse.get(), c.has(5) ? c.d<int32_t>(5) : nullptr, c.dev[2], c.dev[3],
                      Precision::kF32, c.d<int32_t>(4), n, dim, V, c.s);
         std::vector<float> tl(static_cast<size_t>(n));
         loss.download(tl.data(), n, c.s);
         if (c.has(0)) UA_CUDA(cudaMemcpyAsync(c.dev[0], loss.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, c.s));
         if (c.has(1)) UA_CUDA(cudaMemcpyAsync(c.dev[1], lse.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, c.s));
         UA_CUDA(cudaStreamSynchronize(c.s));
         // the CPU's sum: valid tokens in order, in double, over the normalizer
         const auto* labels = static_cast<const int32_t*>(c.host[4].data);
         double total = 0;
         int64_t valid = 0;
         for (int64_t i = 0; i < n; ++i)
           if (labels[i] >= 0) total += tl[i], ++valid;
         return std::vector<double>{total / static_cast<float>(c.sc[3]), static_cast<double>(valid)}; }}},
      // dh|null, dW|null, h, W, labels, lse|null, tokenWeight|null; n, dim, vocab, normalizer
      {"lmHeadCeBackward", {{Fo(true), Fo(true), F(), F(), I(), Fo(), Fo()}, 4, [](const Scalars& s) {
         const int64_t n = I64(s[0]), dim = I64(s[1]), V = I64(s[2]);
         return std::vector<int64_t>{n * dim, V * dim, n * dim, V * dim, n, n, n}; },
       [](Ctx& c) {
         const int64_t n = c.i64(0), dim = c.i64(1), V = c.i64(2);
         CheckLabels(c.host[4], V);
         LmHead head;
         DeviceArray<float> lse, w(n), loss;
         const float* lp = c.d<float>(5);
         if (!lp) {  // the forward's statistics, recomputed
           lse.reserve(n);
           loss.reserve(n);
           head.forward(c.blas, loss.get(), lse.get(), nullptr, c.dev[2], c.dev[3], Precision::kF32, c.d<int32_t>(4), n,
                        dim, V, c.s);
           lp = lse.get();
         }
         const auto* labels = static_cast<const int32_t*>(c.host[4].data);
         const auto* tw = static_cast<const float*>(c.host[6].data);
         std::vector<float> weight(static_cast<size_t>(n));
         for (int64_t i = 0; i < n; ++i)
           weight[i] = labels[i] < 0 ? 0.f : (tw ? tw[i] : 1.f / static_cast<float>(c.sc[3]));
         w.upload(weight.data(), n, c.s);
         head.backward(c.blas, c.d<float>(0), c.d<float>(1), c.dev[2], c.dev[3], Precision::kF32, c.d<int32_t>(4), lp,
                       w.get(), n, dim, V, c.s);
         UA_CUDA(cudaStreamSynchronize(c.s));
         return std::vector<double>{}; }}},
      // param, m, v, grad; n, lr, beta1, beta2, eps, weightDecay, step
      {"adamwStep", {{F(true), F(true), F(true), F()}, 7, [](const Scalars& s) {
         return std::vector<int64_t>(4, I64(s[0])); },
       [](Ctx& c) {
         AdamWParams p;
         p.lr = static_cast<float>(c.sc[1]), p.beta1 = static_cast<float>(c.sc[2]), p.beta2 = static_cast<float>(c.sc[3]);
         p.eps = static_cast<float>(c.sc[4]), p.weight_decay = static_cast<float>(c.sc[5]), p.step = c.i64(6);
         adamw_step(c.d<float>(0), c.d<float>(1), c.d<float>(2), c.d<float>(3), c.i64(0), p, c.s);
         return std::vector<double>{}; }}},
      // grad, spans (f64 [offset, numel] pairs), perTensor (f64, written); k -> [gradMean, l2, maxAbs, nonfinite]
      {"gradStats", {{F(), {HostType::kF64, false, false}, {HostType::kF64, false, false}}, 1, [](const Scalars& s) {
         return std::vector<int64_t>{-1, 2 * I64(s[0]), I64(s[0])}; },
       [](Ctx& c) {
         const int64_t k = c.i64(0);
         const auto* t = static_cast<const double*>(c.host[1].data);
         std::vector<TensorSpan> spans(static_cast<size_t>(k));
         for (int64_t i = 0; i < k; ++i) {
           spans[i].offset = I64(t[2 * i]), spans[i].numel = I64(t[2 * i + 1]);
           if (spans[i].offset < 0 || spans[i].numel < 0 || spans[i].offset + spans[i].numel > c.host[0].count)
             throw ShapeError("gradStats: span " + std::to_string(i) + " is outside the gradient buffer");
         }
         // per-tensor means straight into the host buffer (they are computed on the host)
         const GradStats g = grad_stats(static_cast<double*>(c.host[2].data), c.d<float>(0), spans.data(), k, c.s);
         return std::vector<double>{g.grad_mean, g.l2_norm, g.max_abs, static_cast<double>(g.nonfinite)}; }}},
      // g; n, std, seed, step, tensor
      {"addNoise", {{F(true)}, 5, [](const Scalars& s) { return std::vector<int64_t>{I64(s[0])}; },
       [](Ctx& c) {
         add_noise(c.d<float>(0), c.i64(0), static_cast<float>(c.sc[1]), static_cast<uint64_t>(c.sc[2]),
                   static_cast<uint64_t>(c.sc[3]), static_cast<uint64_t>(c.sc[4]), c.s);
         return std::vector<double>{}; }}},
      {"scale", {{F(true)}, 2, [](const Scalars& s) { return std::vector<int64_t>{I64(s[0])}; },
       [](Ctx& c) { scale(c.d<float>(0), c.i64(0), static_cast<float>(c.sc[1]), c.s); return std::vector<double>{}; }}},
      {"centralize", {{F(true)}, 2, [](const Scalars& s) { return std::vector<int64_t>{I64(s[0] * s[1])}; },
       [](Ctx& c) { centralize(c.d<float>(0), c.i64(0), c.i64(1), c.s); return std::vector<double>{}; }}},
      {"zero", {{F(true)}, 1, [](const Scalars& s) { return std::vector<int64_t>{I64(s[0])}; },
       [](Ctx& c) { zero(c.d<float>(0), c.i64(0), c.s); return std::vector<double>{}; }}},
      // grad, spans (f64 [k*6]), meanAbs|null (f64 [k]), param|null, m|null, v|null;
      // n, k, noiseStd, noiseSeed, noiseStep, scaleFactor, scaleThreshold, clipNorm, l2Norm,
      // lr, beta1, beta2, eps, weightDecay, step (0: no AdamW)
      // -> [noised, scaled, centralized, clipFactor, normBeforeClip]
      {"optimizerStep", {{F(true), {HostType::kF64, false, false}, {HostType::kF64, true, false}, Fo(true), Fo(true), Fo(true)},
                         15, [](const Scalars& s) {
         const int64_t n = I64(s[0]), k = I64(s[1]);
         return std::vector<int64_t>{n, 6 * k, k, n, n, n}; },
       [](Ctx& c) {
         const int64_t n = c.i64(0), k = c.i64(1);
         const std::vector<OptimSpan> spans = OptimSpans(c.host[1], k);
         GradPlan plan;
         plan.noise_std = c.sc[2], plan.noise_seed = static_cast<uint64_t>(c.sc[3]), plan.noise_step = static_cast<uint64_t>(c.sc[4]);
         plan.scale_factor = c.sc[5], plan.scale_threshold = c.sc[6], plan.clip_norm = c.sc[7], plan.l2_norm = c.sc[8];
         plan.mean_abs = static_cast<const double*>(c.host[2].data);
         if (!plan.mean_abs && plan.scale_factor != 1 && plan.scale_threshold > 0)
           throw CodedError("ERR_ARG", "optimizerStep: scaling needs meanAbs");
         AdamWParams p;
         p.lr = static_cast<float>(c.sc[9]), p.beta1 = static_cast<float>(c.sc[10]), p.beta2 = static_cast<float>(c.sc[11]);
         p.eps = static_cast<float>(c.sc[12]), p.weight_decay = static_cast<float>(c.sc[13]), p.step = c.i64(14);
         const bool adam = c.has(3) && c.has(4) && c.has(5) && p.step > 0;
         const PlanEffects fx = optimizer_step(c.d<float>(0), n, adam ? c.d<float>(3) : nullptr, c.d<float>(4), c.d<float>(5),
                                               spans.data(), k, plan, p, c.s);
         return std::vector<double>{static_cast<double>(fx.noised), static_cast<double>(fx.scaled),
                                    static_cast<double>(fx.centralized), fx.clip_factor, fx.norm_before_clip}; }}},
  };
  return ops;
}

const OpDef& Op(const std::string& name) {
  const auto& ops = Ops();
  auto it = ops.find(name);
  if (it == ops.end()) {
    std::string names;
    for (const auto& kv : ops) names += (names.empty() ? "" : ", ") + kv.first;
    throw CodedError("ERR_ARG", "cuda op '" + name + "' does not exist (ops: " + names + ")");
  }
  return it->second;
}

size_t ElementBytes(HostType t) {
  return t == HostType::kF64 ? 8 : t == HostType::kU16 ? 2 : 4;
}

}  // namespace

OpSignature op_signature(const std::string& name, const std::vector<double>& scalars) {
  const OpDef& d = Op(name);
  if (scalars.size() != d.scalars)
    throw CodedError("ERR_ARG", "cuda op '" + name + "': expected " + std::to_string(d.scalars) + " scalars, got " +
                                    std::to_string(scalars.size()));
  for (double v : scalars)
    if (!std::isfinite(v)) throw CodedError("ERR_ARG", "cuda op '" + name + "': every scalar must be finite");
  OpSignature sig;
  sig.counts = d.counts(scalars);
  for (const Buf& b : d.bufs) {
    sig.types.push_back(b.type);
    sig.optional.push_back(b.optional);
  }
  return sig;
}

std::vector<double> run_op(const std::string& name, int device, const std::vector<HostBuf>& bufs,
                           const std::vector<double>& scalars) {
  const OpDef& d = Op(name);
  op_signature(name, scalars);
  if (bufs.size() != d.bufs.size())
    throw CodedError("ERR_ARG", "cuda op '" + name + "': expected " + std::to_string(d.bufs.size()) + " buffers");
  use_device(device);
  Stream st;
  Blas blas(st.get());
  std::vector<DeviceArray<uint8_t>> dev(bufs.size());
  Ctx c{st.get(), blas, std::vector<void*>(bufs.size(), nullptr), bufs, scalars};
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (!bufs[i].data) continue;
    const int64_t bytes = bufs[i].count * static_cast<int64_t>(ElementBytes(bufs[i].type));
    dev[i].upload(static_cast<const uint8_t*>(bufs[i].data), bytes, st.get());
    c.dev[i] = dev[i].get();
  }
  std::vector<double> out = d.run(c);
  for (size_t i = 0; i < bufs.size(); ++i)
    if (bufs[i].data && d.bufs[i].written)
      dev[i].download(static_cast<uint8_t*>(bufs[i].data), bufs[i].count * static_cast<int64_t>(ElementBytes(bufs[i].type)),
                      st.get());
  st.sync();
  return out;
}

std::vector<LibraryStatus> libraries() {
  std::vector<LibraryStatus> out;
  for (const dynlib::LibrarySpec* spec : {&dynlib::cublas_spec(), &dynlib::nccl_spec()}) {
    const auto& r = dynlib::load(*spec);
    LibraryStatus s;
    s.name = spec->name;
    s.path = r.path;
    s.error = r.error;
    s.tried = r.tried;
    if (r.handle) {
      try {
        s.version = spec == &dynlib::nccl_spec() ? nccl_version() : (availability().devices > 0 ? blas_version() : "");
      } catch (const std::exception& e) {
        s.error = e.what();
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
__global__ void FillBf16Kernel(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    x[i] = __float2bfloat16(static_cast<float>(h & 0xffff) / 65536.0f - 0.5f);
  }
}
}  // namespace

double gemm_tflops(int device, int64_t m, int64_t n, int64_t k, int reps) {
  if (m <= 0 || n <= 0 || k <= 0 || reps <= 0) throw CodedError("ERR_ARG", "gemm_tflops: sizes and reps must be positive");
  use_device(device);
  Stream st;
  Blas blas(st.get());
  DeviceArray<__nv_bfloat16> A(m * k), B(k * n);
  DeviceArray<float> C(m * n);
  // random data: zeros run faster than real operands
  FillBf16Kernel<<<grid_for(m * k, 256), 256, 0, st.get()>>>(A.get(), m * k, 1u);
  FillBf16Kernel<<<grid_for(k * n, 256), 256, 0, st.get()>>>(B.get(), k * n, 2u);
  UA_LAUNCHED("fill");
  for (int i = 0; i < 2; ++i) blas.gemm(C.get(), n, A.get(), k, B.get(), n, m, n, k, false, false, 1.f, 0.f, Precision::kBF16);
  cudaEvent_t e0, e1;
  UA_CUDA(cudaEventCreate(&e0));
  UA_CUDA(cudaEventCreate(&e1));
  UA_CUDA(cudaEventRecord(e0, st.get()));
  for (int i = 0; i < reps; ++i) blas.gemm(C.get(), n, A.get(), k, B.get(), n, m, n, k, false, false, 1.f, 0.f, Precision::kBF16);
  UA_CUDA(cudaEventRecord(e1, st.get()));
  UA_CUDA(cudaEventSynchronize(e1));
  float ms = 0;
  UA_CUDA(cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * static_cast<double>(m) * n * k * reps / (ms * 1e-3) / 1e12;
}

}  // namespace ua::cuda
