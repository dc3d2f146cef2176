// Thread control shared by OpenBLAS and the OpenMP kernels.
#include "common.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
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
  n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return n;
}

}  // namespace ua
