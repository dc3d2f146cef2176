// CUDA runtime helpers (runtime.cuh), availability and device facts (api.h).
#include <cstring>

#include "cuda/api.h"
#include "cuda/runtime.cuh"

namespace ua::cuda {

void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  const char* f = std::strrchr(file, '/');
  throw CodedError("ERR_DEVICE", std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") at " +
                                     (f ? f + 1 : file) + ":" + std::to_string(line));
}

void use_device(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    throw CodedError("ERR_DEVICE", "no CUDA device is visible (" + availability().reason + ")");
  if (device < 0 || device >= count)
    throw CodedError("ERR_DEVICE", "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                                       " visible; LOCAL_RANK picks the device modulo that count)");
  UA_CUDA(cudaSetDevice(device));
}

Stream::Stream() { UA_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::sync() const { UA_CUDA(cudaStreamSynchronize(s_)); }

PinnedBuffer::~PinnedBuffer() {
  if (p_) cudaFreeHost(p_);
}

void* PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= cap_) return p_;
  if (p_) cudaFreeHost(p_);
  p_ = nullptr;
  cap_ = 0;
  UA_CUDA(cudaMallocHost(&p_, bytes > 0 ? bytes : 1));
  cap_ = bytes;
  return p_;
}

HostRegistration::HostRegistration(void* p, size_t bytes) : p_(p) {
  ok_ = bytes > 0 && cudaHostRegister(p, bytes, cudaHostRegisterDefault) == cudaSuccess;
  if (!ok_) cudaGetLastError();  // clear the sticky-free error of a refused registration
}

HostRegistration::~HostRegistration() {
  if (ok_) cudaHostUnregister(p_);
}

Availability availability() {
  Availability a;
  a.built = true;
#ifdef UA_CUDA_ARCH
  a.arch = UA_CUDA_ARCH;
#endif
  cudaRuntimeGetVersion(&a.runtime_version);
  cudaDriverGetVersion(&a.driver_version);
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    a.reason = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();
    return a;
  }
  a.devices = count;
  if (count == 0) a.reason = "the CUDA driver reports no device";
  return a;
}

DeviceInfo device_info(int device) {
  use_device(device);
  cudaDeviceProp p{};
  UA_CUDA(cudaGetDeviceProperties(&p, device));
  DeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.major = p.major;
  d.minor = p.minor;
  d.multiprocessors = p.multiProcessorCount;
  d.l2_bytes = p.l2CacheSize;
  d.shared_per_block_optin = static_cast<int64_t>(p.sharedMemPerBlockOptin);
  char bus[32] = {0};
  if (cudaDeviceGetPCIBusId(bus, sizeof bus, device) == cudaSuccess) d.pci_bus_id = bus;
  size_t free_b = 0, total_b = 0;
  UA_CUDA(cudaMemGetInfo(&free_b, &total_b));
  d.free_bytes = static_cast<int64_t>(free_b);
  d.total_bytes = static_cast<int64_t>(total_b);
  return d;
}

}  // namespace ua::cuda
