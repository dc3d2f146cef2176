// Shared definitions for the pure C++ kernels: thread control and small helpers.
// Kernels are plain functions over float* and int64_t sizes (outputs first). No N-API here.
// Every *_backward ACCUMULATES into its gradient outputs (+=); callers zero buffers first.
#pragma once
#include <cstdint>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace ua {

// Number of threads used by our OpenMP kernels, oneDNN and OpenBLAS. Default: OMP_NUM_THREADS
// when set, else the hardware threads.
void set_num_threads(int n);
int num_threads();

// Thrown by kernels on invalid sizes; bindings turn it into a coded JS error (ERR_SHAPE).
struct ShapeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace ua
