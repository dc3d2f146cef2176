// Private to the flash attention kernels (attention.cc fp32, attention_bf16*.cc bf16): the block
// grid, documents, masks and the shared scratch accounting, so both precisions visit exactly the
// same blocks and mask exactly the same scores. Never included outside kernels/attention*.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attention.h"
#include "workspace.h"

namespace ua::attn {

constexpr int64_t kBq = 64;  // query rows per block
constexpr int64_t kBk = 64;  // keys per block; equal to kBq so the causal diagonal is one block
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Doc {
  int64_t a, b;  // tokens [a, b)
};

inline void check_shape(const AttnShape& sh, const char* who) {
  if (sh.s < 0 || sh.H < 1 || sh.Hkv < 1 || sh.d < 1)
    throw ShapeError(std::string(who) + ": need s >= 0, H >= 1, Hkv >= 1, d >= 1");
  if (sh.H % sh.Hkv != 0) throw ShapeError(std::string(who) + ": H must be a multiple of Hkv");
  if (!(sh.scale >= 0.f) || !std::isfinite(sh.scale))
    throw ShapeError(std::string(who) + ": scale must be finite and >= 0 (0 means 1/sqrt(d))");
  if (sh.window < 0) throw ShapeError(std::string(who) + ": window must be >= 0 (0: no sliding window)");
  if (sh.window > 0 && !sh.causal) throw ShapeError(std::string(who) + ": a sliding window needs causal attention");
}

// First key block (aligned to the document's block grid) that some row of the query block
// starting at i0 sees: the window of the block's first row begins at i0 - W + 1.
inline int64_t first_key_block(const AttnShape& sh, int64_t doc_a, int64_t i0) {
  if (sh.window <= 0 || i0 - sh.window + 1 <= doc_a) return doc_a;
  return doc_a + ((i0 - sh.window + 1 - doc_a) / kBk) * kBk;
}

// Sets the scores of row i that fall outside its visible keys [max(j0, i - W + 1), i] of the block
// [j0, j0 + nk) to -inf.
inline void mask_row(float* row, const AttnShape& sh, int64_t i, int64_t j0, int64_t nk) {
  const int64_t hi = sh.causal ? std::clamp<int64_t>(i - j0 + 1, 0, nk) : nk;
  const int64_t lo = sh.window > 0 ? std::clamp<int64_t>(i - sh.window + 1 - j0, 0, hi) : 0;
  std::fill(row, row + lo, -INFINITY);
  std::fill(row + hi, row + nk, -INFINITY);
}

// Whether the block of rows [i0, i0 + nq) x keys [j0, j0 + nk) needs masking: the causal diagonal,
// or a key the last row's window no longer reaches.
inline bool needs_mask(const AttnShape& sh, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  return (sh.causal && j0 + nk - 1 > i0) || (sh.window > 0 && j0 < i0 + nq - sh.window);
}

// Real documents (padding segments, negative lengths, are dropped: nothing attends to or from them).
inline std::vector<Doc> documents(const int32_t* doc_lens, int64_t ndocs, int64_t s, const char* who) {
  std::vector<Doc> docs;
  if (!doc_lens || ndocs == 0) {
    if (s > 0) docs.push_back({0, s});
    return docs;
  }
  if (ndocs < 0) throw ShapeError(std::string(who) + ": negative document count");
  int64_t pos = 0;
  for (int64_t i = 0; i < ndocs; ++i) {
    const int64_t len = doc_lens[i];
    if (len > 0) docs.push_back({pos, pos + len});
    pos += len < 0 ? -len : len;
  }
  if (pos != s)
    throw ShapeError(std::string(who) + ": document lengths cover " + std::to_string(pos) + " tokens, s is " +
                     std::to_string(s));
  return docs;
}

inline float default_scale(const AttnShape& sh) {
  return sh.scale > 0.f ? sh.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(sh.d)));
}

// The high-water mark behind attention_scratch_peak_bytes() (attention.cc).
ScratchTracker& scratch_tracker();

// Scratch of `count` elements of T from the workspace pool, counted in the high-water mark.
template <typename T>
class Scratch : public TrackedWorkspace {
 public:
  explicit Scratch(int64_t count) : TrackedWorkspace(scratch_tracker(), count * static_cast<int64_t>(sizeof(T))) {}
  T* data() const { return static_cast<T*>(Workspace::data()); }
};

// Backward: adds one key block's dK and dV accumulators ([nk, d], rows of the block starting at
// key j0, KV head hk) into the [s, Hkv, d] gradients.
inline void add_kv_block(float* dk, float* dv, const float* dKa, const float* dVa, int64_t j0, int64_t nk, int64_t Hkv,
                         int64_t hk, int64_t d) {
  for (int64_t r = 0; r < nk; ++r) {
    float* gk = dk + ((j0 + r) * Hkv + hk) * d;
    float* gv = dv + ((j0 + r) * Hkv + hk) * d;
    for (int64_t c = 0; c < d; ++c) {
      gk[c] += dKa[r * d + c];
      gv[c] += dVa[r * d + c];
    }
  }
}

// Backward: adds the R per-part dQ partial sums ([R, H, s, d]) into dq [s, H, d], always in part
// order, so the sums are the same for any thread count.
inline void add_dq_parts(float* dq, const float* dQp, int64_t s, int64_t H, int64_t R, int64_t d, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < s; ++i)
    for (int64_t h = 0; h < H; ++h) {
      float* g = dq + (i * H + h) * d;
      for (int64_t r = 0; r < R; ++r) {
        const float* src = dQp + ((r * H + h) * s + i) * d;
        for (int64_t c = 0; c < d; ++c) g[c] += src[c];
      }
    }
}

}  // namespace ua::attn
