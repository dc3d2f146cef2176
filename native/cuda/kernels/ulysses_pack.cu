// The Ulysses layouts' packing on the GPU (the CPU's comm/ulysses.cc pack_heads / unpack_heads /
// the replica sum), around a device all-to-all of chunk j to rank j (comm/device_group.cu).
// Pure copies, except the replica sum, which adds in ascending source rank as the CPU does.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/kernels.cuh"
#include "cuda/runtime.cuh"

namespace ua::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void PackHeadsKernel(float* send, const float* x, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P,
                                bool replicated) {
  const int64_t row = hg * d, chunk = s * row;
  UA_GRID_STRIDE(i, P * chunk) {
    const int64_t j = i / chunk, rem = i - j * chunk, t = rem / row, e = rem - t * row;
    const int64_t h0 = replicated ? (j * H) / P : j * hg;
    send[i] = x[(t * H + h0) * d + e];
  }
}

__global__ void UnpackHeadsKernel(float* out, const float* recv, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P) {
  const int64_t row = hg * d, chunk = s * row;
  UA_GRID_STRIDE(i, P * chunk) {
    const int64_t j = i / chunk, rem = i - j * chunk, t = rem / row, e = rem - t * row;
    out[(t * H + j * hg) * d + e] = recv[i];
  }
}

__global__ void UnpackKvSumKernel(float* out, const float* recv, int64_t s, int64_t Hkv, int64_t d, int64_t P) {
  UA_GRID_STRIDE(i, s * Hkv * d) {
    const int64_t t = i / (Hkv * d), rem = i - t * Hkv * d, h = rem / d, e = rem - h * d;
    // The replicas of kv head h are the consecutive ranks j with floor(j * Hkv / P) == h.
    float acc = 0.f;
    bool first = true;
    for (int64_t j = (h * P + Hkv - 1) / Hkv; j < P && (j * Hkv) / P == h; ++j) {
      const float r = recv[(j * s + t) * d + e];
      acc = first ? r : acc + r;
      first = false;
    }
    out[i] = acc;
  }
}

}  // namespace

void pack_heads(float* send, const float* x, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P, bool replicated,
                cudaStream_t st) {
  if (s <= 0) return;
  PackHeadsKernel<<<grid_for(P * s * hg * d, kThreads), kThreads, 0, st>>>(send, x, s, H, d, hg, P, replicated);
  UA_LAUNCHED("pack_heads");
}

void unpack_heads(float* out, const float* recv, int64_t s, int64_t H, int64_t d, int64_t hg, int64_t P, cudaStream_t st) {
  if (s <= 0) return;
  UnpackHeadsKernel<<<grid_for(P * s * hg * d, kThreads), kThreads, 0, st>>>(out, recv, s, H, d, hg, P);
  UA_LAUNCHED("unpack_heads");
}

void unpack_kv_sum(float* out, const float* recv, int64_t s, int64_t Hkv, int64_t d, int64_t P, cudaStream_t st) {
  if (s <= 0) return;
  UnpackKvSumKernel<<<grid_for(s * Hkv * d, kThreads), kThreads, 0, st>>>(out, recv, s, Hkv, d, P);
  UA_LAUNCHED("unpack_kv_sum");
}

}  // namespace ua::cuda
