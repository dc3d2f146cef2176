// Communicator over Gloo TCP (see communicator.h). Every Gloo call is wrapped so that its
// exceptions become CodedError and mark the communicator failed; nothing here aborts or hangs.
#include "comm/communicator.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/transport/tcp/device.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

namespace ua::comm {

namespace {

void plain_copy(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }

// Classifies a Gloo exception message as a timeout or a broken connection.
CodedError classify_gloo_error(const std::string& what, const std::string& during) {
  const bool timeout = what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos;
  return CodedError(timeout ? "ERR_COMM_TIMEOUT" : "ERR_COMM_PEER", during + ": " + what);
}

void connect_mesh(gloo::rendezvous::Context& ctx, Store& store, std::shared_ptr<gloo::transport::Device>& dev,
                  const std::string& during) {
  try {
    ctx.connectFullMesh(store, dev);
  } catch (const CodedError&) {
    throw;
  } catch (const std::exception& e) {
    throw classify_gloo_error(e.what(), during);
  } catch (...) {
    throw CodedError("ERR_COMM_PEER", during + ": unknown error");
  }
}

}  // namespace

std::shared_ptr<Communicator> Communicator::connect(int rank, int size, std::shared_ptr<Store> store, Millis timeout,
                                                    const std::string& host, bool shared_memory) {
  if (size < 1 || rank < 0 || rank >= size)
    throw CodedError("ERR_COMM_ARG", "communicator: rank " + std::to_string(rank) + " is not in [0, " +
                                        std::to_string(size) + ")");
  if (timeout.count() <= 0) throw CodedError("ERR_COMM_ARG", "communicator: timeout must be positive");
  std::shared_ptr<Communicator> c(new Communicator());
  c->rank_ = rank;
  c->size_ = size;
  c->timeout_ = timeout;
  c->store_ = std::move(store);
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = host;
    c->device_ = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw CodedError("ERR_COMM_PEER", std::string("communicator: cannot open a TCP device on ") + host + ": " + e.what());
  }
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
  ctx->setTimeout(timeout);
  ScopedStore scoped(c->store_, "world.", timeout);
  connect_mesh(*ctx, scoped, c->device_,
               "communicator: rank " + std::to_string(rank) + " of " + std::to_string(size) + " connecting");
  c->ctx_ = std::move(ctx);
  c->want_shm_ = shared_memory;
  c->setup_shared_memory();
  return c;
}

void Communicator::setup_shared_memory() {
  if (size_ == 1 || !want_shm_) return;
  // Same host for every member?
  char id[128] = {0};
  std::string mine = host_identity();
  std::memcpy(id, mine.data(), std::min(mine.size(), sizeof(id) - 1));
  std::vector<char> ids(sizeof(id) * size_);
  all_gather(id, ids.data(), sizeof(id));
  for (int i = 0; i < size_; i++)
    if (std::memcmp(ids.data() + i * sizeof(id), id, sizeof(id)) != 0) return;
  // Every member's pid: a segment's name carries its owner's, so a dead owner's names can be swept.
  const int32_t pid = static_cast<int32_t>(getpid());
  std::vector<int32_t> pids(size_);
  all_gather(&pid, pids.data(), sizeof(pid));
  // A fresh name prefix from rank 0, so concurrent jobs and sub-groups never collide.
  char token[32] = {0};
  if (rank_ == 0) {
    std::random_device rd;
    std::snprintf(token, sizeof(token), "%d-%08x%08x", static_cast<int>(getpid()), rd(), rd());
  }
  broadcast(token, sizeof(token), 0);
  // Every step must succeed on every member, or all stay on TCP (never diverge).
  auto agree = [&](bool ok) {
    int32_t flag = ok ? 1 : 0;
    std::vector<int32_t> flags(size_);
    all_gather(&flag, flags.data(), sizeof(flag));
    for (int32_t f : flags)
      if (!f) return false;
    return true;
  };
  std::unique_ptr<ShmExchange> shm;
  try {
    shm.reset(new ShmExchange(rank_, size_, token, pids));
  } catch (const std::runtime_error&) {
  }
  if (!agree(shm != nullptr)) return;
  bool ok = true;
  try {
    shm->open_peers();
  } catch (const std::runtime_error&) {
    ok = false;
  }
  if (!agree(ok)) return;
  shm->unlink_own();
  shm_ = std::move(shm);
}

Communicator::~Communicator() {
  try {
    close();
  } catch (...) {
  }
}

void Communicator::close() {
  std::lock_guard<std::mutex> lock(op_mu_);
  if (closed_.exchange(true)) return;
  try {
    if (ctx_) ctx_->closeConnections();
  } catch (...) {
    // A broken peer may make closing fail; the handles are dropped either way.
  }
  ctx_.reset();
  shm_.reset();
  // The store (possibly a JS-backed one) is only needed to connect and split.
  store_.reset();
}

template <typename F> void Communicator::run(const char* what, F&& body) {
  std::lock_guard<std::mutex> lock(op_mu_);
  std::string during = std::string(what) + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")";
  if (closed_.load()) throw CodedError("ERR_COMM_CLOSED", during + ": the communicator is closed");
  if (failed_.load()) throw CodedError("ERR_COMM_CLOSED", during + ": the communicator failed earlier: " + failure_);
  try {
    body();
  } catch (const CodedError& e) {
    failure_ = e.what();
    failed_ = true;
    throw;
  } catch (const ShmTimeout& e) {
    failure_ = during + ": no answer within " + std::to_string(timeout_.count()) + " ms (" + e.what() + ")";
    failed_ = true;
    throw CodedError("ERR_COMM_TIMEOUT", failure_);
  } catch (const ShmPeerDead& e) {
    failure_ = during + ": " + e.what();
    failed_ = true;
    throw CodedError("ERR_COMM_PEER", failure_);
  } catch (const std::exception& e) {
    CodedError ce = classify_gloo_error(e.what(), during);
    if (ce.code == "ERR_COMM_TIMEOUT")
      ce = CodedError(ce.code, during + ": no answer within " + std::to_string(timeout_.count()) + " ms (" + e.what() + ")");
    failure_ = ce.what();
    failed_ = true;
    throw ce;
  } catch (...) {
    failure_ = during + ": unknown error";
    failed_ = true;
    throw CodedError("ERR_COMM_PEER", failure_);
  }
}

void Communicator::all_reduce_sum(float* x, size_t n) {
  if (size_ == 1 || n == 0) return;
  run("allReduceSum", [&] {
    gloo::AllreduceOptions opts(ctx_);
    opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
    opts.setOutput(x, n);
    opts.setReduceFunction([](void* c, const void* a, const void* b, size_t k) { gloo::sum<float>(c, a, b, k); });
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::allreduce(opts);
  });
}

void Communicator::broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= size_)
    throw CodedError("ERR_COMM_ARG", "broadcast: root " + std::to_string(root) + " is not in [0, " +
                                        std::to_string(size_) + ")");
  if (size_ == 1 || bytes == 0) return;
  run("broadcast", [&] {
    gloo::BroadcastOptions opts(ctx_);
    opts.setOutput(static_cast<uint8_t*>(data), bytes);
    opts.setRoot(root);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::broadcast(opts);
  });
}

void Communicator::gloo_barrier() {
  gloo::BarrierOptions opts(ctx_);
  opts.setTag(next_tag());
  opts.setTimeout(timeout_);
  gloo::barrier(opts);
}

void Communicator::barrier() {
  if (size_ == 1) return;
  // Same host: the segments' progress words release every member within about a microsecond,
  // where Gloo's TCP barrier measured at least 45 us between the first and the last rank leaving
  // (a rank blocked in a TCP receive has to be woken). Failures are detected the same way as in
  // the shared-memory all-to-all (dead pid, deadline).
  if (shm_) return run("barrier", [&] { shm_->barrier(timeout_.count()); });
  run("barrier", [&] { gloo_barrier(); });
}

void Communicator::all_gather(const void* in, void* out, size_t bytes) {
  if (size_ == 1) {
    if (bytes) std::memmove(out, in, bytes);
    return;
  }
  if (bytes == 0) return;
  run("allGather", [&] {
    gloo::AllgatherOptions opts(ctx_);
    opts.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(in)), bytes);
    opts.setOutput(static_cast<uint8_t*>(out), bytes * size_);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::allgather(opts);
  });
}

void Communicator::all_to_all(const void* in, void* out, size_t bytes_per_rank) {
  const uint8_t* src = static_cast<const uint8_t*>(in);
  uint8_t* dst = static_cast<uint8_t*>(out);
  const size_t chunk = bytes_per_rank;
  // Rows of 4 KiB (the last one shorter) let the shared-memory path pipeline the chunk.
  const size_t row = 4096, rows = (chunk + row - 1) / row;
  auto span = [chunk](size_t r0, size_t r1) { return std::make_pair(r0 * row, std::min(r1 * row, chunk)); };
  exchange(
      chunk, rows,
      [&](int j, uint8_t* d, Copy copy, size_t r0, size_t r1) {
        auto [a, b] = span(r0, r1);
        copy(d + a, src + j * chunk + a, b - a);
      },
      [&](int i, const uint8_t* data, size_t r0, size_t r1) {
        auto [a, b] = span(r0, r1);
        std::memcpy(dst + i * chunk + a, data + a, b - a);
      },
      src, dst);
}

void Communicator::reduce_scatter_sum(const float* in, float* out, size_t n, int block) {
  if (block < 1 || size_ % block != 0)
    throw CodedError("ERR_COMM_ARG", "reduceScatterSum: block " + std::to_string(block) + " does not divide the size " + std::to_string(size_));
  if (n == 0) return;
  if (size_ == 1) {
    std::memmove(out, in, n * sizeof(float));
    return;
  }
  const size_t chunk = n * sizeof(float);
  // Rows of 1024 floats (the last one shorter) let the shared-memory path pipeline the chunk.
  const size_t row = 1024, rows = (n + row - 1) / row;
  auto span = [n](size_t r0, size_t r1) { return std::make_pair(r0 * row, std::min(r1 * row, n)); };
  const uint8_t* src = reinterpret_cast<const uint8_t*>(in);
  // blocks after the first are summed apart (block > 1), then added to out
  if (block > 1 && block < size_ && block_sum_.size() < n) block_sum_.resize(n);
  float* acc = block_sum_.data();
  exchange(
      chunk, rows,
      [&](int j, uint8_t* d, Copy copy, size_t r0, size_t r1) {
        auto [a, b] = span(r0, r1);
        copy(d + a * sizeof(float), src + j * chunk + a * sizeof(float), (b - a) * sizeof(float));
      },
      // sources come in ascending rank order (each one's rows ascending): the sum's order is fixed
      [&](int i, const uint8_t* data, size_t r0, size_t r1) {
        auto [a, b] = span(r0, r1);
        const float* x = reinterpret_cast<const float*>(data);
        if (i == 0) {
          std::memcpy(out + a, x + a, (b - a) * sizeof(float));
        } else if (i < block || block == 1) {
          for (size_t k = a; k < b; k++) out[k] += x[k];
        } else {
          if (i % block == 0)
            std::memcpy(acc + a, x + a, (b - a) * sizeof(float));
          else
            for (size_t k = a; k < b; k++) acc[k] += x[k];
          if (i % block == block - 1)
            for (size_t k = a; k < b; k++) out[k] += acc[k];
        }
      },
      src, nullptr);
}

void Communicator::exchange(size_t chunk, size_t rows, const Pack& pack, const Consume& consume,
                            const uint8_t* send_direct, uint8_t* recv_direct) {
  if (chunk == 0) return;
  if (rows == 0) throw CodedError("ERR_COMM_ARG", "allToAll: a nonempty chunk needs at least one row");
  const size_t total = chunk * size_;
  run("allToAll", [&] {
    if (shm_) return exchange_shared(chunk, rows, pack, consume, send_direct, recv_direct);
    if (size_ == 1) {
      if (send_direct) {
        consume(0, send_direct, 0, rows);
      } else if (recv_direct) {
        pack(0, recv_direct, plain_copy, 0, rows);
      } else {
        if (send_scratch_.size() < chunk) send_scratch_.resize(chunk);
        pack(0, send_scratch_.data(), plain_copy, 0, rows);
        consume(0, send_scratch_.data(), 0, rows);
      }
      return;
    }
    const uint8_t* send = send_direct;
    if (!send) {
      if (send_scratch_.size() < total) send_scratch_.resize(total);
      for (int j = 0; j < size_; j++) pack(j, send_scratch_.data() + j * chunk, plain_copy, 0, rows);
      send = send_scratch_.data();
    }
    uint8_t* recv = recv_direct;
    if (!recv) {
      if (recv_scratch_.size() < total) recv_scratch_.resize(total);
      recv = recv_scratch_.data();
    }
    gloo::AlltoallOptions opts(ctx_);
    opts.setInput(const_cast<uint8_t*>(send), total);
    opts.setOutput(recv, total);
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::alltoall(opts);
    if (!recv_direct)
      for (int i = 0; i < size_; i++) consume(i, recv + static_cast<size_t>(i) * chunk, 0, rows);
  });
}

// The shared-memory all-to-all. Every member makes the same publishes per call (its counter
// advances by pieces + 2), so each knows what a peer's counter value means:
//   base + 1          entry: the member announced where its output and input lie in its window;
//   base + 2 + k      piece k (rows of about kPiece bytes) of every chunk it sends is written;
//   base + 2 + pieces done: it finished reading what peers sent it.
// Each chunk takes one of three routes, decided from the announcements (so both ends agree):
//   - receiver's output in its window: the sender packs straight into it (one copy);
//   - else sender's input (in send order) in its window: the receiver reads straight from it
//     (one copy), and the sender returns only once every such reader is done;
//   - else through the sender's segment ("box", two parities used alternately): the sender packs
//     piece by piece, the receiver copies each piece out as soon as it is published (two copies).
// A receiver that entered earlier copies its own chunk while peers arrive. Direct writes begin
// only after the receiver's entry (the caller handed over its output then), and the receiver
// returns only after every writer's last piece. Reusing a box parity is safe without a barrier:
// this rank writes parity p in call n only after it consumed every peer's last piece of call
// n-1, which each peer published after it finished reading call n-2 (the previous use of p).
void Communicator::exchange_shared(size_t chunk, size_t rows, const Pack& pack, const Consume& consume,
                                   const uint8_t* send_direct, uint8_t* recv_direct) {
  constexpr size_t kPiece = size_t(256) << 10;
  const int64_t ms = timeout_.count();
  const size_t total = chunk * size_;
  // Growing remaps this rank's segment: wait until no peer still reads the previous call.
  if (shm_->needs_growth(total)) {
    shm_->barrier(ms);
    shm_->grow(total);
  }
  const size_t row_bytes = std::max<size_t>(1, chunk / rows);
  const size_t piece_rows = std::max<size_t>(1, std::min(rows, kPiece / row_bytes));
  const size_t pieces = (rows + piece_rows - 1) / piece_rows;
  const uint32_t base = shm_->counter();
  ShmWindow& window = *shm_->window();
  const size_t my_recv = recv_direct ? window.offset_of(recv_direct, total) : SIZE_MAX;
  const size_t my_send = send_direct ? window.offset_of(send_direct, total) : SIZE_MAX;
  shm_->announce(my_recv, my_send);
  shm_->publish();
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();

  // This rank's own chunk never leaves the process: read it from the input, or pack it straight
  // into the output, or pack it into scratch and consume that.
  auto self = [&] {
    if (send_direct) {
      consume(rank_, send_direct + rank_ * chunk, 0, rows);
    } else if (recv_direct) {
      pack(rank_, recv_direct + rank_ * chunk, plain_copy, 0, rows);
    } else {
      if (send_scratch_.size() < chunk) send_scratch_.resize(chunk);
      pack(rank_, send_scratch_.data(), plain_copy, 0, rows);
      consume(rank_, send_scratch_.data(), 0, rows);
    }
  };
  // A plain-copy consume does not depend on order: do the own chunk while peers arrive.
  const bool early = recv_direct != nullptr;
  if (early) self();

  // Routes, from every peer's entry.
  std::vector<uint8_t*>& write_to = direct_write_;
  std::vector<const uint8_t*>& read_from = direct_read_;
  write_to.assign(size_, nullptr);
  read_from.assign(size_, nullptr);
  bool read_by_peer = false;
  for (int j = 0; j < size_; j++) {
    if (j == rank_) continue;
    shm_->wait_for(j, base + 1, ms);
    const size_t peer_recv = shm_->peer_recv_offset(j), peer_send = shm_->peer_send_offset(j);
    if (peer_recv != SIZE_MAX) {
      write_to[j] = shm_->peer_window(j) + peer_recv + static_cast<size_t>(rank_) * chunk;
    } else if (my_send != SIZE_MAX) {
      read_by_peer = true;
    }
    if (my_recv == SIZE_MAX && peer_send != SIZE_MAX)
      read_from[j] = shm_->peer_window(j) + peer_send + static_cast<size_t>(rank_) * chunk;
  }

  uint8_t* box = shm_->own(parity_);
  const ShmExchange::CopyFn copy = shm_->pack_copy();
  for (size_t k = 0; k < pieces; k++) {
    const size_t r0 = k * piece_rows, r1 = std::min(rows, r0 + piece_rows);
    for (int j = 0; j < size_; j++) {
      if (j == rank_) continue;
      if (write_to[j])
        pack(j, write_to[j], copy, r0, r1);
      else if (my_send == SIZE_MAX)
        pack(j, box + j * chunk, copy, r0, r1);
    }
    shm_->publish();
  }

  const uint32_t last_piece = base + 1 + static_cast<uint32_t>(pieces), done = last_piece + 1;
  for (int i = 0; i < size_; i++) {
    if (i == rank_) {
      if (!early) self();
      continue;
    }
    if (my_recv != SIZE_MAX) {
      // Peer i wrote its chunk into this rank's output.
      shm_->wait_for(i, last_piece, ms);
    } else if (read_from[i]) {
      consume(i, read_from[i], 0, rows);
    } else {
      const uint8_t* data = nullptr;
      for (size_t k = 0; k < pieces; k++) {
        shm_->wait_for(i, base + 2 + static_cast<uint32_t>(k), ms);
        // The peer grew its segment (if it had to) before its entry: map it only after a wait.
        if (!data) data = shm_->peer(i, parity_) + static_cast<size_t>(rank_) * chunk;
        consume(i, data, k * piece_rows, std::min(rows, (k + 1) * piece_rows));
      }
    }
  }
  shm_->publish();
  // Peers that read this rank's input straight from its window: the caller may reuse the input
  // only once they are done.
  if (read_by_peer)
    for (int j = 0; j < size_; j++)
      if (j != rank_ && !write_to[j]) shm_->wait_for(j, done, ms);
  shm_->record_call(std::chrono::duration<double>(clock::now() - t0).count(), total);
  // Every member flips on every call (a receiver indexes the sender's box by its own parity).
  parity_ ^= 1;
}

CommBuffer& CommBuffer::operator=(CommBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    bytes_ = o.bytes_;
    window_ = std::move(o.window_);
    offset_ = o.offset_;
    o.data_ = nullptr;
    o.bytes_ = 0;
    o.window_.reset();
  }
  return *this;
}

void CommBuffer::reset() {
  if (window_)
    window_->release(offset_, bytes_);
  else
    ::operator delete(data_, std::align_val_t(64));
  data_ = nullptr;
  bytes_ = 0;
  window_.reset();
}

CommBuffer Communicator::buffer(size_t bytes) {
  CommBuffer b;
  b.bytes_ = bytes;
  if (bytes == 0) return b;
  {
    std::lock_guard<std::mutex> lock(op_mu_);
    if (shm_) {
      const std::shared_ptr<ShmWindow>& w = shm_->window();
      const size_t off = w->allocate(bytes);
      if (off != SIZE_MAX) {
        b.window_ = w;
        b.offset_ = off;
        b.data_ = w->base() + off;
        return b;
      }
    }
  }
  b.data_ = static_cast<uint8_t*>(::operator new(bytes, std::align_val_t(64)));
  std::memset(b.data_, 0, bytes);
  return b;
}

std::shared_ptr<Communicator> Communicator::split(const std::string& tag, const std::vector<int>& members) {
  std::string list;
  int me = -1;
  for (size_t i = 0; i < members.size(); i++) {
    int m = members[i];
    if (m < 0 || m >= size_ || (i > 0 && m <= members[i - 1]))
      throw CodedError("ERR_COMM_ARG", "split '" + tag + "': members must be ascending ranks in [0, " +
                                          std::to_string(size_) + ")");
    if (m == rank_) me = static_cast<int>(i);
    list += (i ? "-" : "") + std::to_string(m);
  }
  if (me < 0)
    throw CodedError("ERR_COMM_ARG", "split '" + tag + "': rank " + std::to_string(rank_) + " is not among members " + list);
  if (closed_.load() || failed_.load()) throw CodedError("ERR_COMM_CLOSED", "split '" + tag + "': the communicator is closed or failed");
  std::shared_ptr<Communicator> c(new Communicator());
  c->rank_ = me;
  c->size_ = static_cast<int>(members.size());
  c->timeout_ = timeout_;
  c->store_ = store_;
  c->device_ = device_;
  auto ctx = std::make_shared<gloo::rendezvous::Context>(me, c->size_);
  ctx->setTimeout(timeout_);
  // File stores map keys to file names: no '/' in the prefix. The split counter (equal on every
  // member, since members split in the same order) keeps a repeated split off stale keys.
  ScopedStore scoped(store_, "sub" + std::to_string(splits_++) + "." + tag + "." + list + ".", timeout_);
  connect_mesh(*ctx, scoped, c->device_, "split '" + tag + "' [" + list + "]");
  c->ctx_ = std::move(ctx);
  c->want_shm_ = want_shm_;
  c->setup_shared_memory();
  return c;
}

double memcpy_gbps(size_t bytes, double min_seconds) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  using clock = std::chrono::steady_clock;
  double best = 1e30;
  auto start = clock::now();
  int reps = 0;
  while (reps < 5 || std::chrono::duration<double>(clock::now() - start).count() < min_seconds) {
    auto t0 = clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    // Keep the copy observable so it is not elided.
    a[reps % bytes] = b[(reps * 7) % bytes];
    best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count());
    if (++reps > 100000) break;
  }
  return static_cast<double>(bytes) / best / 1e9;
}

}  // namespace ua::comm
