// Thread control shared by oneDNN (OpenMP: set per calling thread in matmul.cc), OpenBLAS and the
// OpenMP kernels.
#include "common.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace ua {

namespace {
std::atomic<int> g_threads{0};
}

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() {
  int n = g_threads.load();
  if (n > 0) return n;
  // Until set_num_threads: OMP_NUM_THREADS when it is set (processes that share a host say so
  // through it, as OpenBLAS honours OPENBLAS_NUM_THREADS), otherwise every hardware thread.
  static const int fallback = [] {
    const char* env = std::getenv("OMP_NUM_THREADS");
    const int v = env ? std::atoi(env) : 0;
    return v > 0 ? v : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return fallback;
}

}  // namespace ua
