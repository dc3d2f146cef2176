// Matrix products (matmul.h) through oneDNN's matmul primitive, with OpenBLAS as the reference.
// A primitive is created once per (shape, transposes, leading dims, dtype, alpha, beta, threads)
// and kept in a small LRU cache shared by all threads; creating one JIT-compiles its kernels
// (about a millisecond), executing it is the cheap part. The scratchpad is owned by the caller
// (a per-thread buffer), so one primitive may run on several threads at once.
// oneDNN is built for the OpenMP runtime here: it runs on omp_get_max_threads() of the calling
// thread, so every call first sets that thread's count to num_threads().
// Must never hold the cache lock while creating or running a primitive.
#include "matmul.h"

#include <cblas.h>
#include <omp.h>

#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "bf16.h"

// The thread control below (omp_set_num_threads on the calling thread) only reaches oneDNN when
// it runs on OpenMP, as Debian's build does.
#if DNNL_CPU_RUNTIME != DNNL_RUNTIME_OMP
#error "oneDNN must be built with the OpenMP CPU runtime (DNNL_CPU_RUNTIME=OMP)"
#endif

namespace ua {

namespace {

using dnnl::memory;

enum class Dtype : uint8_t { f32, bf16 };

struct Key {
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t alpha_bits, beta_bits;  // compared as bits: the key must never depend on NaN rules
  int32_t threads;
  bool transA, transB;
  Dtype dtype;

  bool operator==(const Key& o) const {
    return M == o.M && N == o.N && K == o.K && lda == o.lda && ldb == o.ldb && ldc == o.ldc &&
           alpha_bits == o.alpha_bits && beta_bits == o.beta_bits && threads == o.threads && transA == o.transA &&
           transB == o.transB && dtype == o.dtype;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(k.M));
    mix(static_cast<uint64_t>(k.N));
    mix(static_cast<uint64_t>(k.K));
    mix(static_cast<uint64_t>(k.lda));
    mix(static_cast<uint64_t>(k.ldb));
    mix(static_cast<uint64_t>(k.ldc));
    mix((uint64_t(k.alpha_bits) << 32) | k.beta_bits);
    mix((uint64_t(k.threads) << 8) | (uint64_t(k.transA) << 2) | (uint64_t(k.transB) << 1) |
        static_cast<uint64_t>(k.dtype));
    return static_cast<size_t>(h);
  }
};

// A ready primitive, or (prim == nullptr) the note that oneDNN has no implementation here.
struct Plan {
  std::unique_ptr<dnnl::matmul> prim;
  memory::desc a, b, c, scratch;
  std::string impl;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine eng = [] {
    // The library loaded at run time must be the OpenMP build the headers promised.
    if (dnnl_version()->cpu_runtime != DNNL_RUNTIME_OMP)
      throw std::runtime_error("matmul: the loaded oneDNN library does not use the OpenMP runtime; install Debian's libdnnl-dev");
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return eng;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::shared_ptr<const Plan> create_plan(const Key& k) {
  auto plan = std::make_shared<Plan>();
  const memory::data_type dt = k.dtype == Dtype::bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  // op(A)[m, k] lives at A[m * lda + k], or at A[k * lda + m] when transposed; likewise for B.
  plan->a = memory::desc({k.M, k.K}, dt, k.transA ? memory::dims{1, k.lda} : memory::dims{k.lda, 1});
  plan->b = memory::desc({k.K, k.N}, dt, k.transB ? memory::dims{1, k.ldb} : memory::dims{k.ldb, 1});
  plan->c = memory::desc({k.M, k.N}, memory::data_type::f32, memory::dims{k.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  float alpha, beta;
  std::memcpy(&alpha, &k.alpha_bits, 4);
  std::memcpy(&beta, &k.beta_bits, 4);
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  if (beta != 0.f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(plan->a, plan->b, plan->c), attr, cpu_engine());
    plan->scratch = pd.scratchpad_desc();
    plan->impl = pd.impl_info_str();
    plan->prim = std::make_unique<dnnl::matmul>(pd);
  } catch (const dnnl::error& e) {
    if (e.status != dnnl_unimplemented) throw std::runtime_error(std::string("matmul: oneDNN: ") + e.what());
    plan->impl = k.dtype == Dtype::bf16 ? "fp32-fallback" : "openblas-fallback";
  }
  return plan;
}

// LRU cache of plans. Two threads missing the same key may both create it; the first insert wins.
class PlanCache {
 public:
  std::shared_ptr<const Plan> get(const Key& k) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = index_.find(k);
      if (it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->second;
      }
    }
    std::shared_ptr<const Plan> made = create_plan(k);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(k);
    if (it != index_.end()) return it->second->second;
    lru_.emplace_front(k, made);
    index_[k] = lru_.begin();
    if (lru_.size() > kCapacity) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return made;
  }

 private:
  // Distinct products of a training job are a few dozen; the bound only matters for jobs whose
  // sequence lengths vary without end.
  static constexpr size_t kCapacity = 512;
  std::mutex mu_;
  std::list<std::pair<Key, std::shared_ptr<const Plan>>> lru_;
  std::unordered_map<Key, std::list<std::pair<Key, std::shared_ptr<const Plan>>>::iterator, KeyHash> index_;
};

PlanCache& plans() {
  static PlanCache cache;
  return cache;
}

// Threads for a product issued from here: oneDNN runs nested calls serially anyway, and the key
// must say so.
int call_threads() {
  const int nt = omp_in_parallel() ? 1 : std::max(1, num_threads());
  if (omp_get_max_threads() != nt) omp_set_num_threads(nt);
  return nt;
}

void check_dims(const char* who, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                bool transA, bool transB) {
  if (M < 0 || N < 0 || K < 0)
    throw ShapeError(std::string(who) + ": negative dimension (M=" + std::to_string(M) + ", N=" + std::to_string(N) +
                     ", K=" + std::to_string(K) + ")");
  // A stored row holds `cols` elements; an operand with no elements needs no leading dimension.
  auto check = [&](const char* name, int64_t ld, int64_t rows, int64_t cols) {
    if (rows > 0 && cols > 0 && ld < cols)
      throw ShapeError(std::string(who) + ": " + name + "=" + std::to_string(ld) + " is below the stored rows' length " +
                       std::to_string(cols));
  };
  check("lda", lda, transA ? K : M, transA ? M : K);
  check("ldb", ldb, transB ? N : K, transB ? K : N);
  check("ldc", ldc, M, N);
}

// C = beta * C for an empty inner dimension (no library is asked about K = 0).
void scale_only(float* C, int64_t ldc, int64_t M, int64_t N, float beta) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : C[i * ldc + j] * beta;
}

void openblas_ld(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void execute(const Plan& plan, float* C, const void* A, const void* B) {
  thread_local std::unique_ptr<dnnl::stream> stream;
  thread_local std::vector<uint8_t> scratch;
  dnnl::engine& eng = cpu_engine();
  if (!stream) stream = std::make_unique<dnnl::stream>(eng);
  const size_t need = plan.scratch.get_size();
  if (scratch.size() < need) scratch.resize(need);
  try {
    memory am(plan.a, eng, const_cast<void*>(A)), bm(plan.b, eng, const_cast<void*>(B)), cm(plan.c, eng, C);
    memory sm(plan.scratch, eng, need ? scratch.data() : nullptr);
    plan.prim->execute(*stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}});
    stream->wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("matmul: oneDNN execution failed: ") + e.what());
  }
}

Key make_key(Dtype dt, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, bool transA,
             bool transB, float alpha, float beta, int threads) {
  return Key{M, N, K, lda, ldb, ldc, bits_of(alpha), bits_of(beta), threads, transA, transB, dt};
}

// Stored rows of a bf16 operand, widened to fp32 with the same leading dimension.
std::vector<float> widen(const uint16_t* X, int64_t rows, int64_t cols, int64_t ld) {
  std::vector<float> out(static_cast<size_t>(rows > 0 ? (rows - 1) * ld + cols : 0));
  for (int64_t r = 0; r < rows; ++r) bf16_to_f32(out.data() + r * ld, X + r * ld, cols);
  return out;
}

}  // namespace

void matmul_ld(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
               int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta) {
  check_dims("matmul", M, N, K, lda, ldb, ldc, transA, transB);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_only(C, ldc, M, N, beta);
  const int nt = call_threads();
  auto plan = plans().get(make_key(Dtype::f32, M, N, K, lda, ldb, ldc, transA, transB, alpha, beta, nt));
  if (plan->prim) execute(*plan, C, A, B);
  else openblas_ld(C, ldc, A, lda, B, ldb, M, N, K, transA, transB, alpha, beta);
}

void matmul(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool transA, bool transB,
            float alpha, float beta) {
  matmul_ld(C, N, A, transA ? M : K, B, transB ? K : N, M, N, K, transA, transB, alpha, beta);
}

void matmul_bf16_ld(float* C, int64_t ldc, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
                    int64_t M, int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta) {
  check_dims("matmul_bf16", M, N, K, lda, ldb, ldc, transA, transB);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_only(C, ldc, M, N, beta);
  const int nt = call_threads();
  auto plan = plans().get(make_key(Dtype::bf16, M, N, K, lda, ldb, ldc, transA, transB, alpha, beta, nt));
  if (plan->prim) return execute(*plan, C, A, B);
  // No bf16 kernel on this CPU: bf16 products are exact in fp32, so widening the inputs and
  // running the fp32 product computes the same thing.
  const std::vector<float> a = widen(A, transA ? K : M, transA ? M : K, lda);
  const std::vector<float> b = widen(B, transB ? N : K, transB ? K : N, ldb);
  matmul_ld(C, ldc, a.data(), lda, b.data(), ldb, M, N, K, transA, transB, alpha, beta);
}

void matmul_bf16(float* C, const uint16_t* A, const uint16_t* B, int64_t M, int64_t N, int64_t K, bool transA,
                 bool transB, float alpha, float beta) {
  matmul_bf16_ld(C, N, A, transA ? M : K, B, transB ? K : N, M, N, K, transA, transB, alpha, beta);
}

void matmul_openblas(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool transA,
                     bool transB, float alpha, float beta) {
  const int64_t lda = transA ? M : K, ldb = transB ? K : N;
  check_dims("matmul_openblas", M, N, K, lda, ldb, N, transA, transB);
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_only(C, N, M, N, beta);
  openblas_ld(C, N, A, lda, B, ldb, M, N, K, transA, transB, alpha, beta);
}

std::string matmul_impl(bool bf16, int64_t M, int64_t N, int64_t K, bool transA, bool transB) {
  const int64_t lda = transA ? M : K, ldb = transB ? K : N;
  check_dims("matmul_impl", M, N, K, lda, ldb, N, transA, transB);
  if (M == 0 || N == 0 || K == 0) return "none";
  const int nt = call_threads();
  return plans().get(make_key(bf16 ? Dtype::bf16 : Dtype::f32, M, N, K, lda, ldb, N, transA, transB, 1.f, 0.f, nt))->impl;
}

std::string onednn_info() {
  const dnnl_version_t* v = dnnl_version();
  const char* isa = "other";
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: isa = "sse41"; break;
    case dnnl_cpu_isa_avx: isa = "avx"; break;
    case dnnl_cpu_isa_avx2: isa = "avx2"; break;
    case dnnl_cpu_isa_avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl_cpu_isa_avx512_core: isa = "avx512_core"; break;
    case dnnl_cpu_isa_avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl_cpu_isa_avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl_cpu_isa_avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " (" + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime") + ", isa " + isa + ")";
}

}  // namespace ua
