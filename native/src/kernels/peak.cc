// Peak probes (peak.h). Each chain is acc = acc * b + c (fp32) or acc += a . b (bf16 pairs): a
// chain waits on its own previous result, so 24 chains per thread hide the 4-6 cycle latency of
// two vector pipes with room to spare. Each probe function carries its own target attribute and
// runs only when the CPU has the instructions, so the addon still loads elsewhere.
#include "peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>

namespace ua {

namespace {

constexpr int kChains = 24;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Keeps the chains' results alive without a store inside the loop.
volatile float g_sink;

__attribute__((target("avx512f"))) void sink512(__m512 s) {
  float out[16];
  _mm512_storeu_ps(out, s);
  g_sink = out[0] + out[15];
}

#define UA_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                     X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

// The body shared by the 512-bit probes: declare the chains with INIT(i), run STEP(i) on each
// chain per iteration, then fold the chains into the sink.
#define UA_CHAIN_PROBE(INIT, STEP)          \
  UA_CHAINS(INIT)                           \
  for (int64_t it = 0; it < iters; ++it) {  \
    UA_CHAINS(STEP)                         \
  }                                         \
  __m512 s = _mm512_setzero_ps();           \
  UA_CHAINS(UA_SUM)                         \
  sink512(s);
#define UA_SUM(i) s = _mm512_add_ps(s, a##i);

__attribute__((target("avx512f"))) void fma512_chains(int64_t iters) {
  const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
#define UA_DECL(i) __m512 a##i = _mm512_set1_ps(1.f + 0.01f * (i));
#define UA_STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
  UA_CHAIN_PROBE(UA_DECL, UA_STEP)
#undef UA_DECL
#undef UA_STEP
}

// 16 vector registers in AVX2: 12 chains plus the two operands.
__attribute__((target("avx2,fma"))) void fma256_chains(int64_t iters) {
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.f + 0.01f * i);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  }
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  g_sink = out[0];
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) void dpbf16_chains(int64_t iters) {
  // Small products keep the accumulators far from overflow for any run length.
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(3e-3f), _mm512_set1_ps(1e-3f));
#define UA_DECL(i) __m512 a##i = _mm512_set1_ps(0.01f * (i));
#define UA_STEP(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
  UA_CHAIN_PROBE(UA_DECL, UA_STEP)
#undef UA_DECL
#undef UA_STEP
}

#undef UA_SUM
#undef UA_CHAIN_PROBE
#undef UA_CHAINS

// Wall seconds for every thread to run `iters` iterations, started together.
template <typename Probe>
double timed_run(Probe probe, int64_t iters, int threads) {
  double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads)
  {
#pragma omp barrier
#pragma omp master
    t0 = now_s();
    probe(iters);
#pragma omp barrier
#pragma omp master
    t1 = now_s();
  }
  return t1 - t0;
}

}  // namespace

PeakResult measure_peak(PeakKind kind, int threads, double seconds_per_rep, int reps) {
  PeakResult r;
  r.threads = std::max(1, threads);
  void (*probe)(int64_t) = nullptr;
  double flops_per_iter = 0;
  if (kind == PeakKind::fp32_fma) {
    if (__builtin_cpu_supports("avx512f")) {
      probe = fma512_chains, flops_per_iter = kChains * 32.0, r.isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      probe = fma256_chains, flops_per_iter = 12 * 16.0, r.isa = "avx2";
    }
  } else if (__builtin_cpu_supports("avx512bf16")) {
    probe = dpbf16_chains, flops_per_iter = kChains * 64.0, r.isa = "avx512bf16";
  }
  if (!probe) return r;
  r.available = true;
  // Calibrate on short runs (after a warm-up that lets the clock settle), then time full reps.
  // The fastest of three calibration runs sets the length: on a shared machine a descheduled
  // run would otherwise shrink every rep.
  int64_t iters = 1 << 16;
  timed_run(probe, iters, r.threads);
  double t = timed_run(probe, iters, r.threads);
  while (t < 0.01) {
    iters *= 4;
    t = timed_run(probe, iters, r.threads);
  }
  for (int i = 0; i < 2; ++i) t = std::min(t, timed_run(probe, iters, r.threads));
  iters = std::max<int64_t>(1, static_cast<int64_t>(iters * (seconds_per_rep / t)));
  double best = 1e300;
  for (int i = 0; i < std::max(1, reps); ++i) best = std::min(best, timed_run(probe, iters, r.threads));
  r.reps = std::max(1, reps);
  r.seconds = best;
  r.gflops = flops_per_iter * static_cast<double>(iters) * r.threads / best / 1e9;
  return r;
}

}  // namespace ua
