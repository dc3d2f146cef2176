// The CUDA engine of an addon built without nvcc (binding.gyp compiles this file instead of
// linking libua_cuda.a): availability() says so, every other entry point throws ERR_DEVICE with
// the fix. Must never pretend a device exists.
#include "cuda/api.h"

#include "error.h"

namespace ua::cuda {

namespace {

const char* kWhy =
    "this addon was built without CUDA (nvcc was not found when scripts/setup.sh built it); install the CUDA "
    "toolkit (nvcc on PATH, or CUDA_HOME), then run `bash scripts/setup.sh` again, or use device: cpu";

[[noreturn]] void Absent() { throw CodedError("ERR_DEVICE", kWhy); }

}  // namespace

struct CudaModel::Impl {};
class DeviceGroup {};

Availability availability() {
  Availability a;
  a.reason = kWhy;
  return a;
}

DeviceInfo device_info(int) { Absent(); }
std::vector<LibraryStatus> libraries() { return {}; }
OpSignature op_signature(const std::string&, const std::vector<double>&) { Absent(); }
std::vector<double> run_op(const std::string&, int, const std::vector<HostBuf>&, const std::vector<double>&) { Absent(); }
double gemm_tflops(int, int64_t, int64_t, int64_t, int) { Absent(); }
std::vector<uint8_t> nccl_unique_id() { Absent(); }
std::shared_ptr<DeviceGroup> group_nccl(const std::vector<uint8_t>&, int, int, int, int64_t) { Absent(); }
std::shared_ptr<DeviceGroup> group_staged(std::shared_ptr<comm::Communicator>, int) { Absent(); }
GroupInfo group_info(const DeviceGroup&) { Absent(); }
void group_close(DeviceGroup&) {}
void group_collective_host(DeviceGroup&, const std::string&, const void*, void*, int64_t, int) { Absent(); }
void group_ulysses_host(DeviceGroup&, int, float*, int64_t, const float*, int64_t, int64_t, int64_t) { Absent(); }

CudaModel::CudaModel(std::shared_ptr<LlamaModel>, const ModelOptions&) { Absent(); }
CudaModel::~CudaModel() = default;
ForwardResult CudaModel::forward(const int32_t*, const int32_t*, const int32_t*, int64_t, const int32_t*, int64_t, float,
                                 float*, int32_t*) { Absent(); }
void CudaModel::backward(const float*) { Absent(); }
void CudaModel::zero_grad() { Absent(); }
bool CudaModel::has_forward() const { return false; }
void CudaModel::set_checkpointing(bool) { Absent(); }
void CudaModel::set_profiling(bool) { Absent(); }
void CudaModel::reset_profile() {}
std::vector<std::pair<std::string, double>> CudaModel::profile() const { return {}; }
int64_t CudaModel::activation_bytes() const { return 0; }
int64_t CudaModel::attended_tokens(int64_t n) const { return n; }
void CudaModel::set_sequence_parallel(std::shared_ptr<DeviceGroup>) { Absent(); }
bool CudaModel::sequence_parallel() const { return false; }
SequenceParallelStats CudaModel::sequence_parallel_stats(bool) { Absent(); }
int CudaModel::device() const { return 0; }

}  // namespace ua::cuda
