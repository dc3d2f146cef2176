// The SwiGLU MLP of one layer over token tiles (ALST's tiled MLP), so [n, intermediate] never
// exists whole: y[n, D] += down(silu(gate(xn)) * up(xn)) one tile of rows at a time, and the
// backward recomputes each tile's gate and up from the saved normed input. Scratch is
// 5 x [tile, I] floats, whatever n is. fp32 only; must never allocate.
//
// Exactness against the untiled MLP: every per-row quantity (y, dxn) is the same product over
// the same reduction (K = D or I) for a subset of rows; the weight gradients dWg, dWu, dWd sum
// over tokens tile by tile, so they differ from the one-product sum by summation order only.
#pragma once
#include "common.h"

namespace ua {

// Rows per tile for a sequence of n tokens: one tile up to D tokens, otherwise ceil(n / D)
// tiles of equal size (ALST's choice: a tile's [tile, I] block is then about D x I), rounded up
// to 16 rows.
int64_t mlp_tile_rows(int64_t n, int64_t D);

// Floats of scratch the tiled passes need for tiles of `tile` rows.
int64_t mlp_tile_scratch(int64_t tile, int64_t I);

// y[n, D] += act Wd^T with act = silu(xn Wg^T) * (xn Wu^T), tile rows at a time.
// scratch: mlp_tile_scratch(tile, I) floats. Wg, Wu: [I, D]; Wd: [D, I].
void mlp_forward_tiled(float* y, const float* xn, const float* wg, const float* wu, const float* wd, int64_t n,
                       int64_t D, int64_t I, int64_t tile, float* scratch);

// dxn[n, D] = dL/dxn (written; accumulate_dxn: added, for an MLP run in slices of I); dwg, dwu
// [I, D] and dwd [D, I] += their gradients (each nullable: a frozen base). dy: dL/dy [n, D].
void mlp_backward_tiled(float* dxn, float* dwg, float* dwu, float* dwd, const float* dy, const float* xn,
                        const float* wg, const float* wu, const float* wd, int64_t n, int64_t D, int64_t I,
                        int64_t tile, float* scratch, bool accumulate_dxn = false);

}  // namespace ua
