// The staged device group (device_group.cuh): each collective copies device memory to pinned
// host memory, runs the Gloo communicator's collective (with its deadline and ERR_COMM_* codes),
// and copies the result back. For ranks that share a GPU (NCCL refuses them) and for machines
// without NCCL; the bits are the Gloo collectives' bits.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/comm/device_group.cuh"

namespace ua::cuda {

namespace {

class StagedGroup final : public DeviceGroup {
 public:
  StagedGroup(std::shared_ptr<comm::Communicator> c, int device) : DeviceGroup(device), comm_(std::move(c)) {
    if (!comm_) throw CodedError("ERR_COMM_ARG", "staged device group: no communicator");
  }

  int rank() const override { return comm_->rank(); }
  int size() const override { return comm_->size(); }
  const char* transport() const override { return "staged"; }
  bool failed() const override { return comm_->failed(); }

  void all_to_all(const void* in, void* out, size_t bytes, cudaStream_t s) override {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t total = bytes * static_cast<size_t>(size());
    uint8_t* send = Down(send_, in, total, s);
    uint8_t* recv = static_cast<uint8_t*>(recv_.reserve(total));
    comm_->all_to_all(send, recv, bytes);
    Up(out, recv, total, s);
  }

  void all_reduce_sum(float* x, size_t n, cudaStream_t s) override {
    std::lock_guard<std::mutex> lock(mu_);
    float* h = reinterpret_cast<float*>(Down(send_, x, n * sizeof(float), s));
    comm_->all_reduce_sum(h, n);
    Up(x, h, n * sizeof(float), s);
  }

  void reduce_scatter_sum(const float* in, float* out, size_t count, cudaStream_t s) override {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t total = count * static_cast<size_t>(size());
    float* h = reinterpret_cast<float*>(Down(send_, in, total * sizeof(float), s));
    comm_->all_reduce_sum(h, total);  // every element summed once, on one rank: Gloo's bits
    Up(out, h + count * static_cast<size_t>(rank()), count * sizeof(float), s);
  }

  void all_gather(const void* in, void* out, size_t bytes, cudaStream_t s) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint8_t* send = Down(send_, in, bytes, s);
    uint8_t* recv = static_cast<uint8_t*>(recv_.reserve(bytes * static_cast<size_t>(size())));
    comm_->all_gather(send, recv, bytes);
    Up(out, recv, bytes * static_cast<size_t>(size()), s);
  }

  void broadcast(void* x, size_t bytes, int root, cudaStream_t s) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint8_t* h = Down(send_, x, bytes, s);
    comm_->broadcast(h, bytes, root);
    Up(x, h, bytes, s);
  }

  void barrier() override { comm_->barrier(); }

  int64_t max_over_group(int64_t local) override {
    std::vector<int64_t> all(static_cast<size_t>(size()));
    comm_->all_gather(&local, all.data(), sizeof(int64_t));
    int64_t m = local;
    for (int64_t v : all) m = std::max(m, v);
    return m;
  }

  void close() override {}  // the communicator belongs to its own handle

 private:
  uint8_t* Down(PinnedBuffer& buf, const void* dev, size_t bytes, cudaStream_t s) {
    use_device(device_);
    auto* h = static_cast<uint8_t*>(buf.reserve(bytes));
    if (bytes > 0) UA_CUDA(cudaMemcpyAsync(h, dev, bytes, cudaMemcpyDeviceToHost, s));
    UA_CUDA(cudaStreamSynchronize(s));
    return h;
  }

  void Up(void* dev, const void* host, size_t bytes, cudaStream_t s) {
    if (bytes > 0) UA_CUDA(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s));
    UA_CUDA(cudaStreamSynchronize(s));  // the pinned buffer is reused by the next call
  }

  std::shared_ptr<comm::Communicator> comm_;
  std::mutex mu_;
  PinnedBuffer send_, recv_;
};

}  // namespace

std::shared_ptr<DeviceGroup> group_staged(std::shared_ptr<comm::Communicator> comm, int device) {
  return std::make_shared<StagedGroup>(std::move(comm), device);
}

}  // namespace ua::cuda
