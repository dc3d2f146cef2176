// The NCCL device group (device_group.cuh), NCCL loaded at run time (dynlib.h) and declared
// here from its public API (nccl.h): the unique id is 128 opaque bytes, the communicator an
// opaque pointer, results and data types C ints, and the config struct is NCCL 2.17's prefix
// (NCCL reads `size` bytes of it and defaults every later field by `version`).
//
// Never hangs: the communicator is non-blocking (config.blocking = 0); initialization, every
// enqueue that answers ncclInProgress and every wait for a collective's stream are polled,
// checking ncclCommGetAsyncError, until the group's deadline. A timeout or an asynchronous error
// aborts the communicator (ncclCommAbort also ends its pending kernels, so the stream drains)
// and throws ERR_COMM_TIMEOUT or ERR_COMM_PEER; the group then refuses work (ERR_COMM_CLOSED).
#include <chrono>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>

#include "cuda/comm/device_group.cuh"
#include "device/dynlib.h"

namespace ua::cuda {

namespace {

using ncclComm = void*;
using ncclResult = int;
constexpr ncclResult kSuccess = 0, kSystemError = 2, kInvalidArgument = 4, kInvalidUsage = 5, kRemoteError = 6,
                     kInProgress = 7;
constexpr int kInt8 = 0, kInt64 = 4, kFloat32 = 7;  // ncclDataType_t
constexpr int kSum = 0, kMax = 2;                  // ncclRedOp_t

struct UniqueId {
  char internal[kNcclIdBytes];
};

// ncclConfig_t as of NCCL 2.17 (NCCL_CONFIG_INITIALIZER: size, 0xcafebeef, version, then
// NCCL_CONFIG_UNDEF_INT / NULL for every attribute left to NCCL).
struct Config217 {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking, cga_cluster_size, min_ctas, max_ctas;
  const char* net_name;
};

struct NcclApi {
  ncclResult (*get_unique_id)(UniqueId*);
  ncclResult (*init_rank_config)(ncclComm*, int, UniqueId, int, Config217*);
  ncclResult (*get_async_error)(ncclComm, ncclResult*);
  ncclResult (*abort)(ncclComm);
  ncclResult (*get_version)(int*);
  const char* (*error_string)(ncclResult);
  const char* (*last_error)(ncclComm);
  ncclResult (*group_start)();
  ncclResult (*group_end)();
  ncclResult (*send)(const void*, size_t, int, int, ncclComm, cudaStream_t);
  ncclResult (*recv)(void*, size_t, int, int, ncclComm, cudaStream_t);
  ncclResult (*all_reduce)(const void*, void*, size_t, int, int, ncclComm, cudaStream_t);
  ncclResult (*reduce_scatter)(const void*, void*, size_t, int, int, ncclComm, cudaStream_t);
  ncclResult (*all_gather)(const void*, void*, size_t, int, ncclComm, cudaStream_t);
  ncclResult (*broadcast)(const void*, void*, size_t, int, int, ncclComm, cudaStream_t);
};

const NcclApi& Api() {
  static std::mutex mu;
  static NcclApi api{};
  static bool ready = false;
  std::lock_guard<std::mutex> lock(mu);
  if (ready) return api;
  const auto& lib = dynlib::load(dynlib::nccl_spec());
  auto sym = [&](const char* name) { return dynlib::symbol(lib, "NCCL", name); };
  api.get_unique_id = reinterpret_cast<decltype(api.get_unique_id)>(sym("ncclGetUniqueId"));
  api.init_rank_config = reinterpret_cast<decltype(api.init_rank_config)>(sym("ncclCommInitRankConfig"));
  api.get_async_error = reinterpret_cast<decltype(api.get_async_error)>(sym("ncclCommGetAsyncError"));
  api.abort = reinterpret_cast<decltype(api.abort)>(sym("ncclCommAbort"));
  api.get_version = reinterpret_cast<decltype(api.get_version)>(sym("ncclGetVersion"));
  api.error_string = reinterpret_cast<decltype(api.error_string)>(sym("ncclGetErrorString"));
  api.last_error = reinterpret_cast<decltype(api.last_error)>(sym("ncclGetLastError"));
  api.group_start = reinterpret_cast<decltype(api.group_start)>(sym("ncclGroupStart"));
  api.group_end = reinterpret_cast<decltype(api.group_end)>(sym("ncclGroupEnd"));
  api.send = reinterpret_cast<decltype(api.send)>(sym("ncclSend"));
  api.recv = reinterpret_cast<decltype(api.recv)>(sym("ncclRecv"));
  api.all_reduce = reinterpret_cast<decltype(api.all_reduce)>(sym("ncclAllReduce"));
  api.reduce_scatter = reinterpret_cast<decltype(api.reduce_scatter)>(sym("ncclReduceScatter"));
  api.all_gather = reinterpret_cast<decltype(api.all_gather)>(sym("ncclAllGather"));
  api.broadcast = reinterpret_cast<decltype(api.broadcast)>(sym("ncclBroadcast"));
  ready = true;
  return api;
}

std::string ErrorText(ncclResult r) {
  const char* s = Api().error_string ? Api().error_string(r) : nullptr;
  return "NCCL error " + std::to_string(r) + (s ? std::string(" (") + s + ")" : "");
}

using Clock = std::chrono::steady_clock;

class NcclGroup final : public DeviceGroup {
 public:
  NcclGroup(const std::vector<uint8_t>& id, int rank, int size, int device, int64_t timeout_ms)
      : DeviceGroup(device), rank_(rank), size_(size), timeout_(timeout_ms) {
    if (id.size() != static_cast<size_t>(kNcclIdBytes))
      throw CodedError("ERR_COMM_ARG", "NCCL: the unique id must be " + std::to_string(kNcclIdBytes) + " bytes, got " +
                                           std::to_string(id.size()));
    if (size < 1 || rank < 0 || rank >= size)
      throw CodedError("ERR_COMM_ARG", "NCCL: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(size) + ")");
    use_device(device);
    UniqueId uid;
    std::memcpy(uid.internal, id.data(), sizeof uid.internal);
    Config217 cfg{sizeof(Config217), 0xcafebeefu, 21700u, 0, INT_MIN, INT_MIN, INT_MIN, nullptr};
    const ncclResult r = Api().init_rank_config(&comm_, size, uid, rank, &cfg);
    if (r != kSuccess && r != kInProgress) Fail(r, "communicator init");
    Settle("communicator init");
  }

  ~NcclGroup() override { close(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* transport() const override { return "nccl"; }
  bool failed() const override { return failed_; }

  void all_to_all(const void* in, void* out, size_t bytes, cudaStream_t s) override {
    Run("all-to-all", s, [&] {
      Issue(Api().group_start(), "group start");
      for (int p = 0; p < size_; ++p) {
        Issue(Api().send(static_cast<const uint8_t*>(in) + p * bytes, bytes, kInt8, p, comm_, s), "send");
        Issue(Api().recv(static_cast<uint8_t*>(out) + p * bytes, bytes, kInt8, p, comm_, s), "recv");
      }
      return Api().group_end();
    });
  }

  void all_reduce_sum(float* x, size_t n, cudaStream_t s) override {
    Run("all-reduce", s, [&] { return Api().all_reduce(x, x, n, kFloat32, kSum, comm_, s); });
  }

  void reduce_scatter_sum(const float* in, float* out, size_t count, cudaStream_t s) override {
    Run("reduce-scatter", s, [&] { return Api().reduce_scatter(in, out, count, kFloat32, kSum, comm_, s); });
  }

  void all_gather(const void* in, void* out, size_t bytes, cudaStream_t s) override {
    Run("all-gather", s, [&] { return Api().all_gather(in, out, bytes, kInt8, comm_, s); });
  }

  void broadcast(void* x, size_t bytes, int root, cudaStream_t s) override {
    if (root < 0 || root >= size_) throw CodedError("ERR_COMM_ARG", "NCCL broadcast: root " + std::to_string(root) + " is not a rank");
    Run("broadcast", s, [&] { return Api().broadcast(x, x, bytes, kInt8, root, comm_, s); });
  }

  void barrier() override {
    use_device(device_);
    Stream st;
    DeviceArray<float> one(1);
    one.zero(1, st.get());
    all_reduce_sum(one.get(), 1, st.get());
  }

  int64_t max_over_group(int64_t local) override {
    use_device(device_);
    Stream st;
    DeviceArray<int64_t> v(1);
    v.upload(&local, 1, st.get());
    Run("all-reduce (max)", st.get(), [&] { return Api().all_reduce(v.get(), v.get(), 1, kInt64, kMax, comm_, st.get()); });
    int64_t out = 0;
    v.download(&out, 1, st.get());
    st.sync();
    return out;
  }

  void close() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (comm_ && !aborted_) Api().abort(comm_);  // never blocks, whatever the peers do
    aborted_ = true;
    comm_ = nullptr;
  }

 private:
  // Polls the communicator until its pending work (init, or an enqueue that returned
  // ncclInProgress) is done; aborts on error or past the deadline.
  void Settle(const char* what) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_);
    for (;;) {
      ncclResult st = kSuccess;
      const ncclResult r = Api().get_async_error(comm_, &st);
      if (r != kSuccess) Fail(r, what);
      if (st == kSuccess) return;
      if (st != kInProgress) Fail(st, what);
      if (Clock::now() > deadline) Timeout(what);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  void Issue(ncclResult r, const char* what) {
    if (r != kSuccess && r != kInProgress) Fail(r, what);
  }

  // One collective: refuse when failed, enqueue, settle the enqueue, wait for the stream.
  template <typename F> void Run(const char* what, cudaStream_t s, F&& enqueue) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_ || !comm_)
      throw CodedError("ERR_COMM_CLOSED", std::string("NCCL ") + what + ": the group has failed or was closed" +
                                              (failure_.empty() ? "" : " (" + failure_ + ")"));
    use_device(device_);
    const ncclResult r = enqueue();
    Issue(r, what);
    if (r == kInProgress) Settle(what);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) {
        Abort(std::string(what) + ": " + cudaGetErrorString(q));
        UA_CUDA(q);
      }
      ncclResult st = kSuccess;
      Api().get_async_error(comm_, &st);
      if (st != kSuccess && st != kInProgress) Fail(st, what);
      if (Clock::now() > deadline) Timeout(what);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void Abort(const std::string& why) {
    failed_ = true;
    failure_ = why;
    if (comm_ && !aborted_) Api().abort(comm_);
    aborted_ = true;
  }

  [[noreturn]] void Fail(ncclResult r, const char* what) {
    const char* detail = comm_ ? Api().last_error(comm_) : nullptr;
    const std::string msg = std::string("NCCL ") + what + " (rank " + std::to_string(rank_) + " of " +
                            std::to_string(size_) + "): " + ErrorText(r) +
                            (detail && *detail ? std::string(": ") + detail : "");
    Abort(msg);
    // A remote or system error is a peer (or its link) gone; a bad argument or usage is the
    // group's setup (two ranks on one GPU, say); the rest are this rank's own device failing.
    const char* code = r == kRemoteError || r == kSystemError                ? "ERR_COMM_PEER"
                       : r == kInvalidArgument || r == kInvalidUsage ? "ERR_COMM_ARG"
                                                                     : "ERR_DEVICE";
    throw CodedError(code, msg);
  }

  [[noreturn]] void Timeout(const char* what) {
    const std::string msg = std::string("NCCL ") + what + " (rank " + std::to_string(rank_) + " of " +
                            std::to_string(size_) + ") did not complete within " + std::to_string(timeout_) +
                            " ms; the communicator was aborted (a peer is dead, hung or never joined)";
    Abort(msg);
    throw CodedError("ERR_COMM_TIMEOUT", msg);
  }

  int rank_, size_;
  int64_t timeout_;
  ncclComm comm_ = nullptr;
  std::mutex mu_;
  bool failed_ = false, aborted_ = false;
  std::string failure_;
};

}  // namespace

std::vector<uint8_t> nccl_unique_id() {
  UniqueId id;
  const ncclResult r = Api().get_unique_id(&id);
  if (r != kSuccess) throw CodedError("ERR_DEVICE", "ncclGetUniqueId: " + ErrorText(r));
  return std::vector<uint8_t>(reinterpret_cast<uint8_t*>(id.internal), reinterpret_cast<uint8_t*>(id.internal) + kNcclIdBytes);
}

std::shared_ptr<DeviceGroup> group_nccl(const std::vector<uint8_t>& id, int rank, int size, int device,
                                        int64_t timeout_ms) {
  return std::make_shared<NcclGroup>(id, rank, size, device, timeout_ms);
}

std::string nccl_version() {
  const auto& lib = dynlib::load(dynlib::nccl_spec());
  if (!lib.handle) throw CodedError("ERR_DEVICE", "NCCL: " + lib.error);
  int v = 0;
  Api().get_version(&v);
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch
  return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100) +
         " at " + lib.path;
}

}  // namespace ua::cuda
