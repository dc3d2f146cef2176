// Arithmetic peak probes for honest utilization figures (REFERENCE §4): independent chains of
// fused multiply-adds (fp32) or bf16 dot products on every thread at once, timed as a whole.
// Must never be used for anything but measurement: the chains compute nothing of use.
#pragma once
#include <string>

#include "common.h"

namespace ua {

enum class PeakKind { fp32_fma, bf16_dot };

struct PeakResult {
  bool available = false;  // false: the CPU lacks the instructions (bf16_dot without AVX512-BF16)
  double gflops = 0;       // best rep: flops of all threads / wall seconds of the rep
  double seconds = 0;      // wall seconds of the best rep
  int reps = 0;
  int threads = 0;
  std::string isa;         // "avx512" / "avx2" (fp32), "avx512bf16" (bf16)
};

// Flop counts: one 512-bit vfmadd231ps is 16 lanes x 2 = 32 flops; one 512-bit vdpbf16ps is
// 32 bf16 pairs x 2 = 64 flops. Each rep runs about `seconds_per_rep` on `threads` threads.
PeakResult measure_peak(PeakKind kind, int threads, double seconds_per_rep, int reps);

}  // namespace ua
