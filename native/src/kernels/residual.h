// Residual connection: y = a + b over [count] elements.
#pragma once
#include "common.h"

namespace ua {

void residual_forward(float* y, const float* a, const float* b, int64_t count);

// da += dy; db += dy (either nullable).
void residual_backward(float* da, float* db, const float* dy, int64_t count);

}  // namespace ua
