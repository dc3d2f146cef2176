// A communicator over Gloo's TCP transport: a fixed group of ranks (processes) connected in a full
// mesh, with blocking collectives that each end within the communicator's timeout. Callers run
// these off the JS main thread. Plain C++ (no N-API).
// Must never hang (every wait has a deadline), never let a Gloo exception escape as anything but
// CodedError, and never be used again after a failure (it reports ERR_COMM_CLOSED instead).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "error.h"
#include "comm/shm.h"
#include "comm/store.h"

namespace gloo {
class Context;
namespace transport {
class Device;
}
}  // namespace gloo

namespace ua::comm {

// Memory for all-to-all inputs and outputs (Communicator::buffer): in the rank's shared window
// when the communicator exchanges through shared memory (peers then write into it or read from
// it directly: one copy per byte instead of two), else ordinary memory. Zeroed on allocation,
// 64-byte aligned, move-only; the memory stays valid after the communicator is closed.
class CommBuffer {
 public:
  CommBuffer() = default;
  CommBuffer(CommBuffer&& o) noexcept { *this = std::move(o); }
  CommBuffer& operator=(CommBuffer&& o) noexcept;
  CommBuffer(const CommBuffer&) = delete;
  CommBuffer& operator=(const CommBuffer&) = delete;
  ~CommBuffer() { reset(); }

  float* data() const { return reinterpret_cast<float*>(data_); }
  size_t bytes() const { return bytes_; }
  bool shared() const { return window_ != nullptr; }
  void reset();

 private:
  friend class Communicator;
  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
  std::shared_ptr<ShmWindow> window_;  // null: data_ is heap memory
  size_t offset_ = 0;
};

class Communicator {
 public:
  // Connects `size` ranks through `store` (blocking, up to `timeout`). `host`: address to listen on.
  // `shared_memory`: when every rank is on this host, all-to-alls and barriers go through shared
  // memory (with their own synchronization and failure detection, see shm.h; the other
  // collectives stay on Gloo); otherwise, or when false, through TCP.
  static std::shared_ptr<Communicator> connect(int rank, int size, std::shared_ptr<Store> store, Millis timeout,
                                               const std::string& host = "127.0.0.1", bool shared_memory = true);
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  Millis timeout() const { return timeout_; }

  // x[n] <- sum over ranks of x[n]. Ring reduce-scatter + all-gather: every element is summed once,
  // on one rank, then copied, so every rank ends with the same bits.
  void all_reduce_sum(float* x, size_t n);
  // bytes of `data` on `root` copied to every rank.
  void broadcast(void* data, size_t bytes, int root);
  void barrier();
  // out[size * bytes]: rank i's `in` at offset i * bytes.
  void all_gather(const void* in, void* out, size_t bytes);
  // in[size * n], out[n]: out <- the sum over ranks of chunk `rank` of every rank's `in`, added in
  // rank order, first within each block of `block` consecutive ranks, then the block sums in
  // order: block 1 gives (((r0 + r1) + r2) + ...); block 2 on 4 ranks ((r0 + r1) + (r2 + r3)), the
  // order of a sum over SP pairs then over their replicas. The bits are the same run to run and
  // on either path. Through the all-to-all's exchange (shared memory on one host, else Gloo's
  // TCP all-to-all): every rank sends chunk j of its input to rank j and sums what it receives,
  // as ZeRO stage 2 reduces each gradient part on its owner (REFERENCE §8). `in` is left
  // unchanged. `block` must divide the size.
  void reduce_scatter_sum(const float* in, float* out, size_t n, int block = 1);
  // in/out[size * bytes]: chunk j of `in` goes to rank j; chunk i of `out` came from rank i.
  void all_to_all(const void* in, void* out, size_t bytes_per_rank);

  // The all-to-all with caller-supplied packing. Every chunk (`chunk` bytes) is `rows` equal rows;
  // pack(j, dst, copy, r0, r1) writes rows [r0, r1) of the chunk for rank j (dst: the chunk's
  // start) with `copy` (memcpy semantics; into a shared segment a peer reads, the copy that
  // ShmExchange::pack_copy picked); consume(i, data, r0, r1) reads rows [r0, r1) of the chunk source i
  // sent to this rank (data: the chunk's start). Either may be called on the whole chunk or on
  // consecutive row ranges; consume's calls for one source come in ascending rows, sources in
  // ascending i. `send_direct` (optional): the input already in send order (chunk j at
  // j * chunk), sent as is on TCP and read as is for this rank's own chunk; `recv_direct`
  // (optional): consume is a plain copy to recv_direct + i * chunk, so TCP may receive there and
  // this rank's own chunk is packed straight into it. On shared memory, when recv_direct lies in
  // a buffer() of this communicator, peers pack their chunks straight into it (consume is not
  // called for them); else when send_direct does, peers consume their chunks straight from it.
  using Copy = void (*)(void* dst, const void* src, size_t n);
  using Pack = std::function<void(int dest, uint8_t* dst, Copy copy, size_t r0, size_t r1)>;
  using Consume = std::function<void(int source, const uint8_t* data, size_t r0, size_t r1)>;
  void exchange(size_t chunk, size_t rows, const Pack& pack, const Consume& consume,
                const uint8_t* send_direct = nullptr, uint8_t* recv_direct = nullptr);
  bool uses_shared_memory() const { return shm_ != nullptr; }
  // `bytes` of zeroed memory for all-to-all buffers (see CommBuffer); in the shared window when
  // there is one and it has room.
  CommBuffer buffer(size_t bytes);

  // Sub-communicator over `members` (global ranks of this communicator, ascending, including this
  // rank); every member calls it with the same tag and members, and every rank of this
  // communicator makes its splits in the same order (the rendezvous keys are numbered).
  std::shared_ptr<Communicator> split(const std::string& tag, const std::vector<int>& members);

  // Closes the connections; later calls fail with ERR_COMM_CLOSED. Safe to call twice.
  void close();
  bool failed() const { return failed_.load(); }

 private:
  Communicator() = default;
  // Runs one collective under the op lock: refuses when closed/failed, maps Gloo errors.
  template <typename F> void run(const char* what, F&& body);
  uint32_t next_tag() { return tag_++; }
  void gloo_barrier();
  // Sets up the shared-memory exchange when every member is on this host (collective).
  void setup_shared_memory();
  void exchange_shared(size_t chunk, size_t rows, const Pack& pack, const Consume& consume,
                       const uint8_t* send_direct, uint8_t* recv_direct);

  int rank_ = 0, size_ = 1;
  Millis timeout_{30000};
  std::shared_ptr<Store> store_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> ctx_;
  std::mutex op_mu_;
  std::atomic<bool> failed_{false};
  std::atomic<bool> closed_{false};
  std::string failure_;
  uint32_t tag_ = 1;
  uint32_t splits_ = 0;
  std::vector<uint8_t> send_scratch_, recv_scratch_;
  std::vector<float> block_sum_;  // reduce_scatter_sum's partial sum of the current block
  std::unique_ptr<ShmExchange> shm_;
  bool want_shm_ = true;
  int parity_ = 0;
  // exchange_shared's per-call routes (kept to avoid allocating per call).
  std::vector<uint8_t*> direct_write_;
  std::vector<const uint8_t*> direct_read_;
};

// memcpy bandwidth (GB/s, 1e9 bytes/s) of a `bytes` buffer, single thread, best of repeated copies
// for at least `min_seconds`. The baseline of the all-to-all benchmark.
double memcpy_gbps(size_t bytes, double min_seconds);

}  // namespace ua::comm
