// Shared definitions for the pure C++ kernels: thread control and small helpers.
// Kernels are plain functions over float* and int64_t sizes (outputs first). No N-API here.
// Every *_backward ACCUMULATES into its gradient outputs (+=); callers zero buffers first.
// Invalid sizes throw ShapeError (error.h: the addon's one coded error, code ERR_SHAPE).
#pragma once
#include <cstdint>
#include <cstddef>
#include <string>

#include "error.h"

namespace ua {

// Number of threads used by our OpenMP kernels, oneDNN and OpenBLAS. Default: OMP_NUM_THREADS
// when set, else the hardware threads.
void set_num_threads(int n);
int num_threads();

}  // namespace ua
