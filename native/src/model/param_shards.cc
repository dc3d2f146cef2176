// ZeRO stage 3's parameter shards (see param_shards.h).
#include "model/param_shards.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"

namespace ua {

void release_range(void* p, size_t bytes) {
  if (bytes == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + bytes;
  const uintptr_t plo = (lo + page - 1) / page * page, phi = hi / page * page;
  if (phi <= plo) {
    std::memset(p, 0, bytes);
    return;
  }
  std::memset(p, 0, plo - lo);
  std::memset(reinterpret_cast<void*>(phi), 0, hi - phi);
  // private anonymous pages (heap or mapped): reading them again gives zero-filled pages
  if (madvise(reinterpret_cast<void*>(plo), phi - plo, MADV_DONTNEED) != 0) std::memset(reinterpret_cast<void*>(plo), 0, phi - plo);
}

ParamShards::ParamShards(std::shared_ptr<comm::Communicator> comm, ShardLayout layout, const std::vector<ParamView>& views,
                         std::shared_ptr<comm::Communicator> gather_comm)
    : comm_(std::move(comm)), layout_(std::move(layout)), views_(views), gather_comm_(std::move(gather_comm)) {
  const ShardLayout& l = layout_;
  if (l.world < 1 || l.rank < 0 || l.rank >= l.world) throw std::invalid_argument("shardParameters: rank " + std::to_string(l.rank) + " is outside a world of " + std::to_string(l.world));
  if (l.world > 1 && (!comm_ || comm_->size() != l.world || comm_->rank() != l.rank))
    throw std::invalid_argument("shardParameters: the communicator is not this rank's world of " + std::to_string(l.world));
  if (l.dp < 1 || l.block < 1 || l.world % l.block != 0) throw std::invalid_argument("shardParameters: dp and block must be positive, block dividing the world");
  if (l.chunks.size() != views_.size()) throw std::invalid_argument("shardParameters: " + std::to_string(l.chunks.size()) + " chunks for " + std::to_string(views_.size()) + " tensors");
  for (size_t i = 0; i < views_.size(); ++i) {
    if (l.chunks[i] < 0 || l.chunks[i] * l.world < views_[i].numel)
      throw std::invalid_argument("shardParameters: chunk " + std::to_string(i) + " does not cover " + views_[i].name + " over " + std::to_string(l.world) + " parts");
    starts_.push_back(part_length_);
    part_length_ += l.chunks[i];
  }
  params_ = std::make_shared<FloatStorage>(part_length_);
  grads_ = std::make_shared<FloatStorage>(part_length_);
  if (l.world > 1) {
    const int64_t piece = std::min(kPiece, std::max<int64_t>(part_length_, 1));
    send_.assign(static_cast<size_t>(piece * l.world), 0.f);
    recv_.assign(static_cast<size_t>(piece * l.world), 0.f);
    out_.assign(static_cast<size_t>(piece), 0.f);
  }
  if (gather_comm_) {
    if (l.world == 1 || gather_comm_->size() != l.world || gather_comm_->rank() != l.rank)
      throw std::invalid_argument("shardParameters: the gathers' communicator is not this rank's world of " + std::to_string(l.world));
    worker_ = std::thread([this] { work(); });
  }
}

ParamShards::~ParamShards() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void ParamShards::work() {
  for (;;) {
    Job j;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr e;
    try {
      if (!error_) j.run();
    } catch (...) {
      e = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      if (e && !error_) error_ = e;
      ++done_;
    }
    cv_.notify_all();
  }
}

uint64_t ParamShards::queue_job(std::function<void()> run) {
  if (!worker_.joinable()) {
    run();
    return 0;
  }
  std::lock_guard<std::mutex> g(mu_);
  queue_.push_back({std::move(run)});
  cv_.notify_all();
  return ++queued_;
}

uint64_t ParamShards::start_gather(float* full, size_t first, size_t end, std::function<void()> post) {
  return queue_job([this, full, first, end, post = std::move(post)] {
    gather(full, first, end);
    if (post) post();
  });
}

uint64_t ParamShards::start_gather_slice(float* full, size_t t, int64_t e0, int64_t e1, std::function<void()> post) {
  return queue_job([this, full, t, e0, e1, post = std::move(post)] {
    gather_slice(full, t, e0, e1, gather_comm_ ? gather_comm_.get() : nullptr);
    if (post) post();
  });
}

void ParamShards::wait_gather(uint64_t ticket) {
  if (!worker_.joinable()) return;
  std::unique_lock<std::mutex> g(mu_);
  cv_.wait(g, [&] { return done_ >= ticket; });
  if (error_) std::rethrow_exception(error_);
}

template <typename F>
void ParamShards::for_segments(int r, size_t first, size_t end, int64_t a, int64_t b, F&& f) const {
  for (size_t t = first; t < end; ++t) {
    const int64_t s = starts_[t], c = layout_.chunks[t];
    if (s >= b || s + c <= a) continue;
    const int64_t lo = std::max(a, s) - s, hi = std::min(b, s + c) - s;  // within the chunk
    const int64_t e0 = int64_t(r) * c + lo, e1 = std::min(views_[t].numel, int64_t(r) * c + hi);
    if (e1 > e0) f(views_[t].offset + e0, s + lo, e1 - e0);
  }
}

void ParamShards::take_part(const float* full) {
  float* part = params_->data;
  std::memset(part, 0, static_cast<size_t>(part_length_) * sizeof(float));
  for_segments(layout_.rank, 0, views_.size(), 0, part_length_, [&](int64_t o, int64_t p, int64_t n) {
    std::memcpy(part + p, full + o, static_cast<size_t>(n) * sizeof(float));
  });
}

void ParamShards::gather(float* full, size_t first, size_t end) {
  if (first >= end) return;
  const int64_t lo = starts_[first], hi = starts_[end - 1] + layout_.chunks[end - 1];
  const float* part = params_->data;
  if (layout_.world == 1) {
    for_segments(0, first, end, lo, hi, [&](int64_t o, int64_t p, int64_t n) { std::memcpy(full + o, part + p, static_cast<size_t>(n) * sizeof(float)); });
    return;
  }
  const int64_t piece = static_cast<int64_t>(out_.size());
  for (int64_t a = lo; a < hi; a += piece) {
    const int64_t b = std::min(hi, a + piece), len = b - a;
    (gather_comm_ ? gather_comm_ : comm_)->all_gather(part + a, recv_.data(), static_cast<size_t>(len) * sizeof(float));
    for (int r = 0; r < layout_.world; ++r) {
      const float* src = recv_.data() + int64_t(r) * len;
      for_segments(r, first, end, a, b, [&](int64_t o, int64_t p, int64_t n) { std::memcpy(full + o, src + (p - a), static_cast<size_t>(n) * sizeof(float)); });
    }
  }
}

void ParamShards::reduce_scatter(float* full_grads, size_t first, size_t end) {
  if (first >= end) return;
  const int64_t lo = starts_[first], hi = starts_[end - 1] + layout_.chunks[end - 1];
  float* part = grads_->data;
  if (layout_.world == 1) {
    for_segments(0, first, end, lo, hi, [&](int64_t o, int64_t p, int64_t n) {
      for (int64_t i = 0; i < n; ++i) part[p + i] += full_grads[o + i];
    });
  } else {
    const int64_t piece = static_cast<int64_t>(out_.size());
    for (int64_t a = lo; a < hi; a += piece) {
      const int64_t b = std::min(hi, a + piece), len = b - a;
      std::fill(send_.begin(), send_.begin() + len * layout_.world, 0.f);
      for (int r = 0; r < layout_.world; ++r) {
        float* dst = send_.data() + int64_t(r) * len;
        for_segments(r, first, end, a, b, [&](int64_t o, int64_t p, int64_t n) { std::memcpy(dst + (p - a), full_grads + o, static_cast<size_t>(n) * sizeof(float)); });
      }
      comm_->reduce_scatter_sum(send_.data(), out_.data(), static_cast<size_t>(len), layout_.block);
      // the world SUM: the MEAN over the replicas is taken once per step (Optimizer.reduceGradients)
      for (int64_t i = 0; i < len; ++i) part[a + i] += out_[i];
    }
  }
  release(full_grads, first, end);
}

void ParamShards::release(void* full, size_t first, size_t end, size_t elem_bytes) const {
  if (first >= end) return;
  const int64_t lo = flat_lo(first), hi = flat_hi(end);
  release_range(static_cast<uint8_t*>(full) + lo * int64_t(elem_bytes), static_cast<size_t>(hi - lo) * elem_bytes);
}

void ParamShards::gather_slice(float* full, size_t t, int64_t e0, int64_t e1, comm::Communicator* via) {
  comm::Communicator* c_ = via ? via : comm_.get();
  const int64_t c = layout_.chunks[t], off = views_[t].offset;
  e1 = std::min(e1, views_[t].numel);
  for (int r = 0; r < layout_.world; ++r) {
    const int64_t lo = std::max(e0, int64_t(r) * c), hi = std::min(e1, int64_t(r + 1) * c);
    if (hi <= lo) continue;
    if (r == layout_.rank) std::memcpy(full + off + lo, params_->data + starts_[t] + (lo - int64_t(r) * c), static_cast<size_t>(hi - lo) * sizeof(float));
    if (layout_.world == 1) continue;
    if (!c_->uses_shared_memory()) {
      c_->broadcast(full + off + lo, static_cast<size_t>(hi - lo) * sizeof(float), r);
      continue;
    }
    // on one host: the owner writes its rows into every peer's chunk of the shared window, in
    // pieces of kPiece elements; the other chunks carry nothing
    for (int64_t a = lo; a < hi; a += kPiece) {
      const int64_t len = std::min(hi, a + kPiece) - a;
      const size_t bytes = static_cast<size_t>(len) * sizeof(float), row = 4096, rows = (bytes + row - 1) / row;
      uint8_t* base = reinterpret_cast<uint8_t*>(full + off + a);
      const bool owner = r == layout_.rank;
      c_->exchange(
          bytes, rows,
          [&](int j, uint8_t* d, comm::Communicator::Copy copy, size_t r0, size_t r1) {
            if (!owner || j == r) return;
            const size_t b0 = r0 * row, b1 = std::min(bytes, r1 * row);
            copy(d + b0, base + b0, b1 - b0);
          },
          [&](int i, const uint8_t* data, size_t r0, size_t r1) {
            if (owner || i != r) return;
            const size_t b0 = r0 * row, b1 = std::min(bytes, r1 * row);
            std::memcpy(base + b0, data + b0, b1 - b0);
          });
    }
  }
}

void ParamShards::reduce_slice(float* full_grads, size_t t, int64_t e0, int64_t e1) {
  const int64_t c = layout_.chunks[t], off = views_[t].offset;
  e1 = std::min(e1, views_[t].numel);
  float* part = grads_->data;
  for (int r = 0; r < layout_.world; ++r) {
    const int64_t lo = std::max(e0, int64_t(r) * c), hi = std::min(e1, int64_t(r + 1) * c);
    if (hi <= lo) continue;
    float* dst = part + starts_[t] + (lo - int64_t(r) * c);
    if (layout_.world == 1) {
      for (int64_t i = 0; i < hi - lo; ++i) dst[i] += full_grads[off + lo + i];
      continue;
    }
    const int64_t piece = static_cast<int64_t>(out_.size());
    for (int64_t a = lo; a < hi; a += piece) {
      const int64_t len = std::min(hi, a + piece) - a;
      // only the owner's chunk holds the slice: the others receive (and sum) zeros
      std::fill(send_.begin(), send_.begin() + len * layout_.world, 0.f);
      std::memcpy(send_.data() + int64_t(r) * len, full_grads + off + a, static_cast<size_t>(len) * sizeof(float));
      comm_->reduce_scatter_sum(send_.data(), out_.data(), static_cast<size_t>(len), layout_.block);
      if (r == layout_.rank)
        for (int64_t i = 0; i < len; ++i) dst[(a - lo) + i] += out_[i];
    }
  }
  release_slice(full_grads, t, e0, e1);
}

void ParamShards::release_slice(void* full, size_t t, int64_t e0, int64_t e1, size_t elem_bytes) const {
  e1 = std::min(e1, views_[t].numel);
  if (e1 <= e0) return;
  release_range(static_cast<uint8_t*>(full) + (views_[t].offset + e0) * int64_t(elem_bytes), static_cast<size_t>(e1 - e0) * elem_bytes);
}

int64_t ParamShards::rows_per_piece(int64_t width) const {
  const int64_t piece = layout_.world > 1 ? static_cast<int64_t>(out_.size()) : kPiece;
  if (width > piece) throw std::logic_error("shardParameters: a row of " + std::to_string(width) + " floats is wider than a piece of " + std::to_string(piece));
  return piece / width;
}

template <typename Pack, typename Unpack>
void ParamShards::gather_block(int64_t nrows, int64_t width, Pack&& pack, Unpack&& unpack) {
  if (nrows <= 0 || width <= 0) return;
  const int64_t rp = rows_per_piece(width);
  pack_.resize(static_cast<size_t>(std::min(rp, nrows) * width));
  for (int64_t i0 = 0; i0 < nrows; i0 += rp) {
    const int64_t i1 = std::min(nrows, i0 + rp), len = (i1 - i0) * width;
    pack(i0, i1, pack_.data());
    if (layout_.world == 1) {
      unpack(0, i0, i1, pack_.data());
      continue;
    }
    (gather_comm_ ? gather_comm_ : comm_)->all_gather(pack_.data(), recv_.data(), static_cast<size_t>(len) * sizeof(float));
    for (int r = 0; r < layout_.world; ++r) unpack(r, i0, i1, recv_.data() + int64_t(r) * len);
  }
}

template <typename Fill, typename Add>
void ParamShards::reduce_block(int64_t nrows, int64_t width, Fill&& fill, Add&& add) {
  if (nrows <= 0 || width <= 0) return;
  const int64_t rp = rows_per_piece(width);
  std::vector<float> single;
  if (layout_.world == 1) single.resize(static_cast<size_t>(std::min(rp, nrows) * width));
  for (int64_t i0 = 0; i0 < nrows; i0 += rp) {
    const int64_t i1 = std::min(nrows, i0 + rp), len = (i1 - i0) * width;
    if (layout_.world == 1) {
      fill(0, i0, i1, single.data());
      add(i0, i1, single.data());
      continue;
    }
    std::fill(send_.begin(), send_.begin() + len * layout_.world, 0.f);
    for (int r = 0; r < layout_.world; ++r) fill(r, i0, i1, send_.data() + int64_t(r) * len);
    comm_->reduce_scatter_sum(send_.data(), out_.data(), static_cast<size_t>(len), layout_.block);
    add(i0, i1, out_.data());
  }
}

void ParamShards::gather_rows(float* out, size_t t, int64_t cols, int64_t r0, int64_t r1) {
  const int64_t cr = chunk_rows(t, cols), rows = views_[t].numel / cols, bw = r1 - r0, me = layout_.rank;
  const float* part = params_->data + starts_[t];
  gather_block(
      bw, cols,
      [&](int64_t i0, int64_t i1, float* dst) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t local = r0 + i;
          float* d = dst + (i - i0) * cols;
          if (local < cr && me * cr + local < rows) std::memcpy(d, part + local * cols, static_cast<size_t>(cols) * sizeof(float));
          else std::memset(d, 0, static_cast<size_t>(cols) * sizeof(float));
        }
      },
      [&](int r, int64_t i0, int64_t i1, const float* src) {
        std::memcpy(out + (int64_t(r) * bw + i0) * cols, src, static_cast<size_t>((i1 - i0) * cols) * sizeof(float));
      });
}

void ParamShards::reduce_rows(float* g, size_t t, int64_t cols, int64_t r0, int64_t r1) {
  const int64_t cr = chunk_rows(t, cols), rows = views_[t].numel / cols, bw = r1 - r0, me = layout_.rank;
  float* part = grads_->data + starts_[t];
  reduce_block(
      bw, cols,
      [&](int r, int64_t i0, int64_t i1, float* dst) {
        std::memcpy(dst, g + (int64_t(r) * bw + i0) * cols, static_cast<size_t>((i1 - i0) * cols) * sizeof(float));
      },
      [&](int64_t i0, int64_t i1, const float* src) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t local = r0 + i;
          if (local >= cr || me * cr + local >= rows) continue;
          float* d = part + local * cols;
          const float* s = src + (i - i0) * cols;
          for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
        }
      });
  release_range(g, static_cast<size_t>(int64_t(layout_.world) * bw * cols) * sizeof(float));
}

void ParamShards::gather_cols(float* out, size_t t, int64_t cols, const std::vector<int64_t>& sel) {
  const int64_t cr = chunk_rows(t, cols), rows = views_[t].numel / cols, width = static_cast<int64_t>(sel.size()), me = layout_.rank;
  const float* part = params_->data + starts_[t];
  gather_block(
      cr, width,
      [&](int64_t i0, int64_t i1, float* dst) {
        for (int64_t i = i0; i < i1; ++i) {
          const float* row = part + i * cols;
          float* d = dst + (i - i0) * width;
          const bool real = me * cr + i < rows;
          for (int64_t j = 0; j < width; ++j) d[j] = real && sel[j] >= 0 ? row[sel[j]] : 0.f;
        }
      },
      [&](int r, int64_t i0, int64_t i1, const float* src) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = int64_t(r) * cr + i;
          if (row < rows) std::memcpy(out + row * width, src + (i - i0) * width, static_cast<size_t>(width) * sizeof(float));
        }
      });
}

void ParamShards::reduce_cols(float* g, size_t t, int64_t cols, const std::vector<int64_t>& sel) {
  const int64_t cr = chunk_rows(t, cols), rows = views_[t].numel / cols, width = static_cast<int64_t>(sel.size()), me = layout_.rank;
  float* part = grads_->data + starts_[t];
  reduce_block(
      cr, width,
      [&](int r, int64_t i0, int64_t i1, float* dst) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t row = int64_t(r) * cr + i;
          if (row < rows) std::memcpy(dst + (i - i0) * width, g + row * width, static_cast<size_t>(width) * sizeof(float));
          else std::memset(dst + (i - i0) * width, 0, static_cast<size_t>(width) * sizeof(float));
        }
      },
      [&](int64_t i0, int64_t i1, const float* src) {
        for (int64_t i = i0; i < i1; ++i) {
          if (me * cr + i >= rows) continue;
          float* row = part + i * cols;
          const float* s = src + (i - i0) * width;
          for (int64_t j = 0; j < width; ++j)
            if (sel[j] >= 0) row[sel[j]] += s[j];
        }
      });
  release_range(g, static_cast<size_t>(rows * width) * sizeof(float));
}

void ParamShards::note_resident(int64_t delta_bytes) {
  resident_ += delta_bytes;
  peak_ = std::max(peak_, resident_);
}

int64_t ParamShards::buffer_bytes() const {
  return static_cast<int64_t>((send_.size() + recv_.size() + out_.size() + pack_.size()) * sizeof(float));
}

}  // namespace ua
