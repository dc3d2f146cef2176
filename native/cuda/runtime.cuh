// CUDA runtime helpers of the engine: error mapping to CodedError (ERR_DEVICE, naming the call),
// device selection, streams and device arrays (RAII, move-only), pinned host staging.
// Every allocation is plain cudaMalloc (never managed memory). Must never let a CUDA error pass
// unchecked: a failed launch or copy throws at the call that issued it (or at the next sync).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "error.h"

namespace ua::cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line);

#define UA_CUDA(call)                                                               \
  do {                                                                              \
    const cudaError_t ua_e_ = (call);                                               \
    if (ua_e_ != cudaSuccess) ::ua::cuda::throw_cuda(ua_e_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, execution errors at the next sync.
#define UA_LAUNCHED(name) UA_CUDA(cudaPeekAtLastError())

// Selects `device` for the calling thread (ERR_DEVICE when it does not exist).
void use_device(int device);

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// A 1-D grid of `threads`-thread blocks covering `n` items (at least one block, capped for grid-stride loops).
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t b = ceil_div(n > 0 ? n : 1, threads);
  return static_cast<unsigned>(b < 65535 * 32 ? b : 65535 * 32);
}

// A stream of the current device, destroyed with its owner.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const;

 private:
  cudaStream_t s_ = nullptr;
};

// Device memory for `size` elements of T on the device current at allocation. Capacity only
// grows (reserve); contents are undefined until written.
template <typename T> class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(int64_t n) { reserve(n); }
  DeviceArray(DeviceArray&& o) noexcept { *this = std::move(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      release();
      std::swap(p_, o.p_);
      std::swap(cap_, o.cap_);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { release(); }

  void reserve(int64_t n) {
    if (n <= cap_) return;
    release();
    void* p = nullptr;
    UA_CUDA(cudaMalloc(&p, static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)));
    p_ = static_cast<T*>(p);
    cap_ = n;
  }
  T* get() const { return p_; }
  int64_t capacity() const { return cap_; }
  int64_t bytes() const { return cap_ * static_cast<int64_t>(sizeof(T)); }
  void release() {
    if (p_) cudaFree(p_);  // cudaFree's own failure (a dead context) has nothing left to free
    p_ = nullptr;
    cap_ = 0;
  }
  void upload(const T* host, int64_t n, cudaStream_t s) {
    reserve(n);
    if (n > 0) UA_CUDA(cudaMemcpyAsync(p_, host, static_cast<size_t>(n) * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  void download(T* host, int64_t n, cudaStream_t s) const {
    if (n > 0) UA_CUDA(cudaMemcpyAsync(host, p_, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost, s));
  }
  void zero(int64_t n, cudaStream_t s) {
    reserve(n);
    if (n > 0) UA_CUDA(cudaMemsetAsync(p_, 0, static_cast<size_t>(n) * sizeof(T), s));
  }

 private:
  T* p_ = nullptr;
  int64_t cap_ = 0;
};

// Page-locked host memory (fast, truly asynchronous copies), grown on demand.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* reserve(size_t bytes);
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

// Registers an existing host range as page-locked for the owner's lifetime (the model's host
// parameters and gradients: their copies then run at full speed). Registration failing (some
// sandboxes refuse it) is not an error: the copies are merely slower.
class HostRegistration {
 public:
  HostRegistration(void* p, size_t bytes);
  ~HostRegistration();
  HostRegistration(const HostRegistration&) = delete;
  HostRegistration& operator=(const HostRegistration&) = delete;
  bool registered() const { return ok_; }

 private:
  void* p_ = nullptr;
  bool ok_ = false;
};

}  // namespace ua::cuda
