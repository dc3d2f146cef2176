// Device groups (api.h DeviceGroup): collectives over device memory for the ranks of one group,
// with the Gloo communicator's interface (comm/communicator.h) and error codes. Two transports:
//   - NCCL (nccl.cu): one GPU per rank; non-blocking communicator, every wait polled against
//     the deadline and ncclCommGetAsyncError, ncclCommAbort on failure or timeout;
//   - staged (staged.cu): device -> pinned host -> Gloo communicator -> device, for ranks that
//     share a GPU (NCCL refuses two ranks on one device) or have no NCCL.
// And the Ulysses layouts of comm/ulysses.h on top of either (pack on the device, one all-to-all,
// unpack on the device): the results equal the CPU layouts bit for bit.
// Each collective is complete when it returns (the stream synchronized); a failed group refuses
// every later call with ERR_COMM_CLOSED. Must never let a rank wait past the deadline.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/api.h"
#include "cuda/runtime.cuh"

namespace ua::cuda {

class DeviceGroup {
 public:
  virtual ~DeviceGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* transport() const = 0;
  virtual bool failed() const = 0;
  int device() const { return device_; }

  // chunk j of in (bytes_per_rank) goes to rank j; chunk i of out came from rank i.
  virtual void all_to_all(const void* in, void* out, size_t bytes_per_rank, cudaStream_t s) = 0;
  // x[n] <- sum over ranks, the same bits on every rank.
  virtual void all_reduce_sum(float* x, size_t n, cudaStream_t s) = 0;
  // out[count] <- chunk `rank` of the sum over ranks of in[size * count].
  virtual void reduce_scatter_sum(const float* in, float* out, size_t count, cudaStream_t s) = 0;
  // out[size * bytes]: rank i's in at offset i * bytes.
  virtual void all_gather(const void* in, void* out, size_t bytes, cudaStream_t s) = 0;
  virtual void broadcast(void* x, size_t bytes, int root, cudaStream_t s) = 0;
  virtual void barrier() = 0;
  // The largest `local` over the group (host values; the dynamic rope's sequence length).
  virtual int64_t max_over_group(int64_t local) = 0;
  virtual void close() = 0;

 protected:
  explicit DeviceGroup(int device) : device_(device) {}
  int device_;
};

// "NCCL <version> at <path>", or throws ERR_DEVICE naming what was searched.
std::string nccl_version();

// The Ulysses layouts (comm/ulysses.h) over a device group, on device memory (s: this rank's
// tokens). `scratch` holds ulysses_scratch_floats(P, s, H, Hkv, d) floats.
int64_t ulysses_scratch_floats(int64_t P, int64_t s, int64_t H, int64_t Hkv, int64_t d);
void ulysses_seq_to_head(DeviceGroup& g, float* out, const float* x, int64_t s, int64_t H, int64_t d, float* scratch,
                         cudaStream_t st);
void ulysses_head_to_seq(DeviceGroup& g, float* out, const float* y, int64_t s, int64_t H, int64_t d, float* scratch,
                         cudaStream_t st);
void ulysses_seq_to_head_kv(DeviceGroup& g, float* out, const float* x, int64_t s, int64_t Hkv, int64_t d,
                            float* scratch, cudaStream_t st);
void ulysses_head_to_seq_kv_sum(DeviceGroup& g, float* out, const float* y, int64_t s, int64_t Hkv, int64_t d,
                                float* scratch, cudaStream_t st);

}  // namespace ua::cuda
