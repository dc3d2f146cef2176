// Ulysses layouts (see ulysses.h): one strided pack straight into the send buffer (the shared-memory
// segment on one host), one exchange, and at most one strided unpack. Must never allocate per
// call once the buffers have grown to the activation size.
#include "comm/ulysses.h"

#include <cstring>

namespace ua::comm {

void check_heads(int64_t H, int64_t P) {
  if (H <= 0 || P <= 0 || H % P != 0)
    throw CodedError("ERR_COMM_ARG", "ulysses: the number of attention heads H=" + std::to_string(H) +
                                        " must be divisible by the sequence-parallel degree P=" + std::to_string(P));
}

int64_t kv_heads_per_rank(int64_t Hkv, int64_t P) {
  if (Hkv > 0 && P > 0 && Hkv % P == 0) return Hkv / P;
  if (Hkv > 0 && P > 0 && P % Hkv == 0) return 1;
  throw CodedError("ERR_COMM_ARG", "ulysses: key/value heads Hkv=" + std::to_string(Hkv) +
                                      " must be divisible by P=" + std::to_string(P) +
                                      " or divide it (kv replication); choose P among the divisors or multiples of " +
                                      std::to_string(Hkv));
}

namespace {

void check_sizes(int64_t s, int64_t d) {
  if (s < 0 || d <= 0)
    throw CodedError("ERR_COMM_ARG", "ulysses: expected s >= 0 and d > 0, got s=" + std::to_string(s) + " d=" +
                                        std::to_string(d));
}

// Tokens [t0, t1) of dst [s, hg, d] <- heads [h0, h0+hg) of the same tokens of x [s, H, d].
void pack_heads(float* dst, const float* x, int64_t H, int64_t d, int64_t h0, int64_t hg, size_t t0, size_t t1,
                Communicator::Copy copy) {
  const size_t row = static_cast<size_t>(hg * d) * sizeof(float);
  for (int64_t t = static_cast<int64_t>(t0); t < static_cast<int64_t>(t1); t++)
    copy(dst + t * hg * d, x + (t * H + h0) * d, row);
}

// Heads [h0, h0+hg) of tokens [t0, t1) of out [s, H, d] <- the same tokens of src [s, hg, d].
void unpack_heads(float* out, const float* src, int64_t H, int64_t d, int64_t h0, int64_t hg, size_t t0, size_t t1) {
  const size_t row = static_cast<size_t>(hg * d) * sizeof(float);
  for (int64_t t = static_cast<int64_t>(t0); t < static_cast<int64_t>(t1); t++)
    std::memcpy(out + (t * H + h0) * d, src + t * hg * d, row);
}

const float* F(const uint8_t* p) { return reinterpret_cast<const float*>(p); }
float* F(uint8_t* p) { return reinterpret_cast<float*>(p); }

// Shared body of seq_to_head / seq_to_head_kv: chunk j = heads [first(j), first(j)+hg) of x.
// What rank r receives from source i belongs at rows [i*s, (i+1)*s) of out: already [P*s, hg, d].
// Chunks are s rows (tokens) of hg*d floats.
template <typename First>
void scatter_heads(Communicator& c, float* out, const float* x, int64_t s, int64_t H, int64_t d, int64_t hg,
                   First first) {
  const int64_t chunk = s * hg * d, row = hg * d;
  const size_t bytes = static_cast<size_t>(chunk) * sizeof(float);
  c.exchange(
      bytes, static_cast<size_t>(s),
      [&](int j, uint8_t* dst, Communicator::Copy copy, size_t t0, size_t t1) {
        pack_heads(F(dst), x, H, d, first(j), hg, t0, t1, copy);
      },
      [&](int i, const uint8_t* data, size_t t0, size_t t1) {
        std::memcpy(out + i * chunk + t0 * row, F(data) + t0 * row, (t1 - t0) * row * sizeof(float));
      },
      nullptr, reinterpret_cast<uint8_t*>(out));
}

}  // namespace

void seq_to_head(Communicator& c, float* out, const float* x, int64_t s, int64_t H, int64_t d) {
  check_sizes(s, d);
  check_heads(H, c.size());
  const int64_t hg = H / c.size();
  scatter_heads(c, out, x, s, H, d, hg, [hg](int64_t j) { return j * hg; });
}

void head_to_seq(Communicator& c, float* out, const float* y, int64_t s, int64_t H, int64_t d) {
  check_sizes(s, d);
  const int64_t P = c.size();
  check_heads(H, P);
  const int64_t hg = H / P, chunk = s * hg * d, row = hg * d;
  const size_t bytes = static_cast<size_t>(chunk) * sizeof(float);
  // Rows [i*s, (i+1)*s) of y belong to rank i's tokens: y is already in send order.
  c.exchange(
      bytes, static_cast<size_t>(s),
      [&](int j, uint8_t* dst, Communicator::Copy copy, size_t t0, size_t t1) {
        copy(F(dst) + t0 * row, y + j * chunk + t0 * row, (t1 - t0) * row * sizeof(float));
      },
      [&](int j, const uint8_t* data, size_t t0, size_t t1) { unpack_heads(out, F(data), H, d, j * hg, hg, t0, t1); },
      reinterpret_cast<const uint8_t*>(y));
}

void seq_to_head_kv(Communicator& c, float* out, const float* x, int64_t s, int64_t Hkv, int64_t d) {
  check_sizes(s, d);
  const int64_t P = c.size(), hg = kv_heads_per_rank(Hkv, P);
  if (Hkv % P == 0) return seq_to_head(c, out, x, s, Hkv, d);
  scatter_heads(c, out, x, s, Hkv, d, hg, [Hkv, P](int64_t j) { return (j * Hkv) / P; });
}

void head_to_seq_kv_sum(Communicator& c, float* out, const float* g, int64_t s, int64_t Hkv, int64_t d) {
  check_sizes(s, d);
  const int64_t P = c.size();
  kv_heads_per_rank(Hkv, P);
  if (Hkv % P == 0) return head_to_seq(c, out, g, s, Hkv, d);
  const int64_t chunk = s * d;
  const size_t bytes = static_cast<size_t>(chunk) * sizeof(float);
  // Source j held the replica of kv head floor(j*Hkv/P); replicas are consecutive ranks and
  // consume runs in ascending j, so every element's sum has a fixed order: the first replica
  // copies, the others add (row ranges of one source never overlap, so splitting them does not
  // change that order).
  c.exchange(
      bytes, static_cast<size_t>(s),
      [&](int j, uint8_t* dst, Communicator::Copy copy, size_t t0, size_t t1) {
        copy(F(dst) + t0 * d, g + j * chunk + t0 * d, (t1 - t0) * d * sizeof(float));
      },
      [&](int j, const uint8_t* data, size_t t0, size_t t1) {
        const int64_t h = (j * Hkv) / P;
        const bool first = j == 0 || ((j - 1) * Hkv) / P != h;
        const float* src = F(data);
        for (int64_t t = static_cast<int64_t>(t0); t < static_cast<int64_t>(t1); t++) {
          float* o = out + (t * Hkv + h) * d;
          const float* r = src + t * d;
          if (first)
            std::memcpy(o, r, static_cast<size_t>(d) * sizeof(float));
          else
            for (int64_t e = 0; e < d; e++) o[e] += r[e];
        }
      },
      reinterpret_cast<const uint8_t*>(g));
}

}  // namespace ua::comm
