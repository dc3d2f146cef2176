// Tiled SwiGLU MLP (mlp_tiled.h): the same kernels as the untiled layer pass, called on row
// blocks, so the per-row results are those of the untiled pass.
#include "mlp_tiled.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "linear.h"
#include "matmul.h"
#include "swiglu.h"

namespace ua {

namespace {

struct Tile {
  float *gate, *up, *act, *dg, *du;
};

Tile split(float* s, int64_t tile, int64_t I) {
  const int64_t b = tile * I;
  return {s, s + b, s + 2 * b, s + 3 * b, s + 4 * b};
}

void check(const char* what, int64_t n, int64_t D, int64_t I, int64_t tile) {
  if (n < 0 || D <= 0 || I <= 0 || tile <= 0)
    throw ShapeError(std::string(what) + ": bad sizes (n=" + std::to_string(n) + ", D=" + std::to_string(D) +
                     ", I=" + std::to_string(I) + ", tile=" + std::to_string(tile) + ")");
}

// gate, up and act of rows [r0, r0 + m).
void tile_act(const Tile& t, const float* xn, const float* wg, const float* wu, int64_t m, int64_t D, int64_t I) {
  linear_forward(t.gate, xn, wg, nullptr, m, D, I);
  linear_forward(t.up, xn, wu, nullptr, m, D, I);
  swiglu_forward(t.act, t.gate, t.up, m * I);
}

}  // namespace

int64_t mlp_tile_rows(int64_t n, int64_t D) {
  if (n <= D || D <= 0) return std::max<int64_t>(n, 1);
  const int64_t tiles = (n + D - 1) / D;
  const int64_t rows = ((n + tiles - 1) / tiles + 15) / 16 * 16;
  return std::min(rows, n);
}

int64_t mlp_tile_scratch(int64_t tile, int64_t I) { return 5 * tile * I; }

void mlp_forward_tiled(float* y, const float* xn, const float* wg, const float* wu, const float* wd, int64_t n,
                       int64_t D, int64_t I, int64_t tile, float* scratch) {
  check("mlp_forward_tiled", n, D, I, tile);
  const Tile t = split(scratch, tile, I);
  for (int64_t r0 = 0; r0 < n; r0 += tile) {
    const int64_t m = std::min(tile, n - r0);
    tile_act(t, xn + r0 * D, wg, wu, m, D, I);
    matmul(y + r0 * D, t.act, wd, m, D, I, false, true, 1.f, 1.f);
  }
}

void mlp_backward_tiled(float* dxn, float* dwg, float* dwu, float* dwd, const float* dy, const float* xn,
                        const float* wg, const float* wu, const float* wd, int64_t n, int64_t D, int64_t I,
                        int64_t tile, float* scratch, bool accumulate_dxn) {
  check("mlp_backward_tiled", n, D, I, tile);
  const Tile t = split(scratch, tile, I);
  for (int64_t r0 = 0; r0 < n; r0 += tile) {
    const int64_t m = std::min(tile, n - r0);
    const float* x = xn + r0 * D;
    const float* g = dy + r0 * D;
    float* dx = dxn + r0 * D;
    tile_act(t, x, wg, wu, m, D, I);
    if (dwd) linear_backward(nullptr, dwd, nullptr, g, t.act, wd, m, I, D);  // dWd += dy^T act
    float* dact = t.act;                                                        // act is dead now
    matmul(dact, g, wd, m, I, D, false, false, 1.f, 0.f);                       // dact = dy Wd
    std::memset(t.dg, 0, sizeof(float) * static_cast<size_t>(m * I));
    std::memset(t.du, 0, sizeof(float) * static_cast<size_t>(m * I));
    swiglu_backward(t.dg, t.du, dact, t.gate, t.up, m * I);
    matmul(dx, t.dg, wg, m, D, I, false, false, 1.f, accumulate_dxn ? 1.f : 0.f);
    matmul(dx, t.du, wu, m, D, I, false, false, 1.f, 1.f);
    if (dwg) linear_backward(nullptr, dwg, nullptr, t.dg, x, wg, m, D, I);
    if (dwu) linear_backward(nullptr, dwu, nullptr, t.du, x, wu, m, D, I);
  }
}

}  // namespace ua
