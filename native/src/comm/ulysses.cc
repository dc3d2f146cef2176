// Ulysses layouts (see ulysses.h): one strided pack into the communicator's scratch buffer, one
// all-to-all, and at most one strided unpack. Must never allocate per call once the scratch has
// grown to the activation size.
#include "comm/ulysses.h"

#include <cstring>

namespace ua::comm {

void check_heads(int64_t H, int64_t P) {
  if (H <= 0 || P <= 0 || H % P != 0)
    throw CommError("ERR_COMM_ARG", "ulysses: the number of attention heads (" + std::to_string(H) +
                                        ") must be divisible by the sequence-parallel degree P=" + std::to_string(P));
}

int64_t kv_heads_per_rank(int64_t Hkv, int64_t P) {
  if (Hkv > 0 && P > 0 && Hkv % P == 0) return Hkv / P;
  if (Hkv > 0 && P > 0 && P % Hkv == 0) return 1;
  throw CommError("ERR_COMM_ARG", "ulysses: key/value heads Hkv=" + std::to_string(Hkv) +
                                      " must be divisible by P=" + std::to_string(P) + " or divide P (replication); " +
                                      "choose P among the divisors or multiples of " + std::to_string(Hkv));
}

namespace {

// Grows the scratch buffer to n floats (reused across calls).
float* scratch(Communicator& c, size_t n) {
  auto& s = c.scratch();
  if (s.size() < n) s.resize(n);
  return s.data();
}

// Copies the heads [h0, h0+hg) of every token of x [s, H, d] into dst [s, hg, d].
void pack_heads(float* dst, const float* x, int64_t s, int64_t H, int64_t d, int64_t h0, int64_t hg) {
  const size_t row = static_cast<size_t>(hg * d) * sizeof(float);
  for (int64_t t = 0; t < s; t++) std::memcpy(dst + t * hg * d, x + (t * H + h0) * d, row);
}

}  // namespace

void seq_to_head(Communicator& c, float* out, const float* x, int64_t s, int64_t H, int64_t d) {
  const int64_t P = c.size();
  check_heads(H, P);
  const int64_t hg = H / P, chunk = s * hg * d;
  if (P == 1) {
    std::memcpy(out, x, static_cast<size_t>(chunk) * sizeof(float));
    return;
  }
  std::lock_guard<std::mutex> lock(c.op_mutex() /* guards scratch; the collective locks again */ == c.op_mutex()
                                       ? scratch_mutex()
                                       : scratch_mutex());
}

}  // namespace ua::comm
