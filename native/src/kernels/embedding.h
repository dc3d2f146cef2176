// Token embedding lookup.
// ids: [n] (each in [0, vocab)), table: [vocab, dim], y: [n, dim]
#pragma once
#include "common.h"

namespace ua {

// Throws ShapeError naming the first id outside [0, vocab).
void embedding_forward(float* y, const int32_t* ids, const float* table, int64_t n, int64_t vocab, int64_t dim);

// dtable[ids[i]] += dy[i], deterministic (fixed summation order regardless of threads).
void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim);

// The same for the tokens whose id lies in rows [v0, v1) only (ZeRO stage 3's vocabulary
// slices: the table need only hold those rows); each row gets the bits the whole call gives it.
void embedding_forward_rows(float* y, const int32_t* ids, const float* table, int64_t n, int64_t vocab, int64_t dim, int64_t v0, int64_t v1);
void embedding_backward_rows(float* dtable, const float* dy, const int32_t* ids, int64_t n, int64_t vocab, int64_t dim, int64_t v0, int64_t v1);

}  // namespace ua
