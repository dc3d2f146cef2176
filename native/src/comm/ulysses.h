// The Ulysses all-to-all layouts of REFERENCE §2, packed in native code, over a communicator of
// P ranks (the SP group). Plain C++ (no N-API). Must never reorder tokens other than as
// documented: the results equal the naive re-layouts bit for bit.
//
// seq_to_head:      x: [s, H, d] (this rank's tokens, all heads) -> out: [P*s, H/P, d]
//                   (all tokens in source-rank order, head group `rank`: heads [rank*H/P, (rank+1)*H/P)).
// head_to_seq:      y: [P*s, H/P, d] -> out: [s, H, d]; the inverse (and the backward of seq_to_head).
// seq_to_head_kv:   x: [s, Hkv, d] -> out: [P*s, Hg, d], Hg = Hkv/P when Hkv % P == 0; when
//                   P % Hkv == 0, Hg = 1 and rank j receives kv head floor(j*Hkv/P) (replicated).
// head_to_seq_kv_sum: g: [P*s, Hg, d] -> out: [s, Hkv, d]; the backward of seq_to_head_kv: the
//                   replicas' contributions to one kv head are summed in source-rank order.
#pragma once
#include <cstdint>
#include <string>

#include "comm/communicator.h"

namespace ua::comm {

// Heads per rank after seq_to_head_kv; throws CodedError ERR_COMM_ARG naming the numbers when
// (H, Hkv, P) is not a valid Ulysses layout.
int64_t kv_heads_per_rank(int64_t Hkv, int64_t P);
void check_heads(int64_t H, int64_t P);

void seq_to_head(Communicator& c, float* out, const float* x, int64_t s, int64_t H, int64_t d);
void head_to_seq(Communicator& c, float* out, const float* y, int64_t s, int64_t H, int64_t d);
void seq_to_head_kv(Communicator& c, float* out, const float* x, int64_t s, int64_t Hkv, int64_t d);
void head_to_seq_kv_sum(Communicator& c, float* out, const float* g, int64_t s, int64_t Hkv, int64_t d);

}  // namespace ua::comm
