// The CUDA engine as the addon sees it: plain C++ types only (no CUDA or NCCL headers), so the
// bindings compile the same whether native/cuda was built by nvcc (libua_cuda.a, UA_WITH_CUDA) or
// not (stub.cc, where every entry point but availability() throws ERR_DEVICE saying so).
//
// Three parts:
//   - availability and device facts (never throw where a GPU is simply absent);
//   - kernel ops over HOST memory (upload, run on the device, download): what the tests use to
//     check every CUDA kernel against the CPU kernel of the same name on the same inputs;
//   - the CUDA decoder (CudaModel) and device groups (NCCL, or staged through host memory over a
//     Gloo communicator) for its Ulysses attention.
// Every function that touches a device selects it itself (cudaSetDevice): callers run them on
// any libuv worker thread. Errors are CodedError: ERR_DEVICE (no GPU, library or kernel
// failure), ERR_SHAPE / ERR_ARG (bad sizes), ERR_COMM_* (collectives).
// Must never include a CUDA header, and never hand out device pointers to JS.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/llama.h"

namespace ua::cuda {

// ---- availability --------------------------------------------------------------------------

struct Availability {
  bool built = false;           // native/cuda was compiled into this addon
  int devices = 0;              // visible CUDA devices (0 when none, or no driver)
  std::string reason;           // why devices == 0 (empty otherwise)
  int runtime_version = 0;      // CUDA runtime linked in (e.g. 13000)
  int driver_version = 0;       // what the driver supports (0: no driver)
  std::string arch;             // the device code compiled in (e.g. "sm_90")
};
Availability availability();    // never throws

struct DeviceInfo {
  int index = 0;
  std::string name, pci_bus_id;
  int major = 0, minor = 0, multiprocessors = 0;
  int64_t total_bytes = 0, free_bytes = 0, l2_bytes = 0, shared_per_block_optin = 0;
};
DeviceInfo device_info(int device);

struct LibraryStatus {
  std::string name, path, error;
  std::vector<std::string> tried;
  std::string version;          // e.g. "cuBLAS 130100", "NCCL 2.27.7" (empty when not loaded)
};
// Loads (or retries) cuBLAS and NCCL and reports where they came from; never throws.
std::vector<LibraryStatus> libraries();

// ---- kernel ops on host memory (tests) -------------------------------------------------------

enum class HostType { kF32 = 0, kI32 = 1, kU16 = 2, kF64 = 3 };
struct HostBuf {
  void* data = nullptr;         // nullptr: the op's optional buffer is absent
  int64_t count = 0;            // elements
  HostType type = HostType::kF32;
};

// The element counts op `name` expects for each buffer given its scalars (-1: absent allowed,
// any length checked by the op); throws ERR_ARG for an unknown op or bad scalars.
struct OpSignature {
  std::vector<int64_t> counts;
  std::vector<HostType> types;
  std::vector<bool> optional;
};
OpSignature op_signature(const std::string& name, const std::vector<double>& scalars);

// Runs op `name` on `device`: uploads every present buffer, runs the CUDA kernel(s), downloads
// every buffer the op writes, synchronizes. Returns the op's scalar results (e.g. loss, valid).
std::vector<double> run_op(const std::string& name, int device, const std::vector<HostBuf>& bufs,
                           const std::vector<double>& scalars);

// cuBLAS bf16 (bf16 x bf16 -> fp32) GEMM rate on `device`: `reps` products of m x n x k after
// a warm-up, timed with CUDA events; returns TFLOP/s (the bench's reference for the attention).
double gemm_tflops(int device, int64_t m, int64_t n, int64_t k, int reps);

// ---- device groups ---------------------------------------------------------------------------

// Collectives over device memory for one group of ranks: NCCL (one GPU per rank) or staged
// through pinned host memory over a Gloo communicator (ranks that share a GPU, where NCCL
// refuses). Opaque to the addon.
class DeviceGroup;

constexpr int kNcclIdBytes = 128;
// A fresh NCCL unique id (rank 0 makes it; it travels to the others through the rendezvous store).
std::vector<uint8_t> nccl_unique_id();
// Joins the NCCL communicator of `id` (non-blocking init, polled against the deadline).
std::shared_ptr<DeviceGroup> group_nccl(const std::vector<uint8_t>& id, int rank, int size, int device,
                                        int64_t timeout_ms);
std::shared_ptr<DeviceGroup> group_staged(std::shared_ptr<comm::Communicator> comm, int device);

struct GroupInfo {
  int rank = 0, size = 1, device = 0;
  bool failed = false;
  std::string transport;        // "nccl" | "staged"
};
GroupInfo group_info(const DeviceGroup& g);
void group_close(DeviceGroup& g);   // NCCL: ncclCommAbort if a collective is pending, else destroy

// Collectives on host buffers (tests): upload, the device collective, download.
//   op: "allReduceSum" (f32 in place: in == out), "reduceScatterSum" (f32 in [size*count] ->
//   out [count]), "allGather" (in [b] -> out [size*b]), "allToAll" (in, out [size*b]),
//   "broadcast" (in place, root), "barrier" (no buffers).
void group_collective_host(DeviceGroup& g, const std::string& op, const void* in, void* out, int64_t bytes, int root);
// The Ulysses layouts of comm/ulysses.h on device memory (kind 0..3 as commUlysses).
void group_ulysses_host(DeviceGroup& g, int kind, float* out, int64_t out_count, const float* x, int64_t s,
                        int64_t H, int64_t d);

// ---- the CUDA decoder --------------------------------------------------------------------------

struct ModelOptions {
  int device = 0;
  bool bf16 = false;            // GEMM operands in bf16 (weights and activations), fp32 accumulation
};

struct SequenceParallelStats {
  int64_t degree = 1, alltoalls = 0, bytes = 0, cache_hits = 0, buffer_bytes = 0;
  double comm_seconds = 0;
};

// The model of model/llama.h on one GPU. `host` owns the parameters, the gradients, the view
// table and the initialization (the CPU model object, whose own forward is never run here):
// every forward uploads the host parameters, every backward adds the device gradients into the
// host gradients, so every optimizer, reduction and checkpoint above sees the CPU model's buffers
// with the CPU model's semantics.
class CudaModel {
 public:
  CudaModel(std::shared_ptr<LlamaModel> host, const ModelOptions& o);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  ForwardResult forward(const int32_t* tokens, const int32_t* labels, const int32_t* positions, int64_t n,
                        const int32_t* doc_lens, int64_t ndocs, float normalizer, float* token_loss,
                        int32_t* token_argmax);
  void backward(const float* token_weight);
  void zero_grad();
  bool has_forward() const;
  void set_checkpointing(bool on);
  void set_profiling(bool on);
  void reset_profile();
  std::vector<std::pair<std::string, double>> profile() const;
  int64_t activation_bytes() const;
  int64_t attended_tokens(int64_t n) const;
  // Ulysses attention over `g` (P = its size); nullptr: back to local attention.
  void set_sequence_parallel(std::shared_ptr<DeviceGroup> g);
  bool sequence_parallel() const;
  SequenceParallelStats sequence_parallel_stats(bool reset);
  int device() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ua::cuda
