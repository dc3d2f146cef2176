// ZeRO stage 3's sharded parameters and gradients of a LlamaModel (REFERENCE §8): this rank keeps
// only its part of every tensor (the cut of src/train/zero/partition.ts: each tensor's chunk,
// ceil(rows / world) whole rows, rank r holding elements [r * chunk, (r + 1) * chunk) clipped to
// the tensor; the parts packed in tensor order, padded to one length on every rank), in two
// packed buffers of that length. A run of whole tensors (a layer, the embedding, the final norm
// and LM head) is gathered into the model's flat parameter buffer at the views' offsets just
// before it is used and released after (its pages handed back to the system: the range reads as
// zero again), and its gradient is reduce-scattered into this rank's part right after its
// backward wrote it, then released the same way, so the flat buffers only ever hold the pages of
// the run in use. The collectives go through the world communicator in pieces of a bounded size.
// With a second world communicator the gathers run on a worker thread of their own (start_gather /
// wait_gather, in FIFO order), so the next run's gather overlaps the current run's compute while
// the reduce-scatters stay on the caller's thread and communicator.
// Plain C++ (no N-API). Must never be called from more than one thread besides its own worker, or
// issue a collective that another rank does not issue at the same point (every rank gathers and
// reduces the same runs in the same order).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "model/llama.h"

namespace ua {

namespace comm {
class Communicator;
}

struct ShardLayout {
  int rank = 0;
  int world = 1;
  // data-parallel replicas (the caller divides the world sum by it: MEAN over replicas)
  int dp = 1;
  // ranks summed first (the SP block), then the blocks: the order of the stage-0 reduction
  int block = 1;
  // each tensor's part length (the partition map's chunks)
  std::vector<int64_t> chunks;
};

// Hands the pages inside [p, p + bytes) back to the system and zeroes the partial pages at the
// edges: the range reads as zero afterwards and holds no resident memory but those edges.
void release_range(void* p, size_t bytes);

class ParamShards {
 public:
  // Elements per rank of one piece of a collective (512 KiB; the world-sized buffers hold world x this).
  static constexpr int64_t kPiece = int64_t(1) << 17;

  // comm: the world (nullptr only when world == 1). Throws std::invalid_argument on a layout that
  // does not cover the views.
  // gather_comm (nullable): a second world communicator for the gathers, run on a worker thread.
  ParamShards(std::shared_ptr<comm::Communicator> comm, ShardLayout layout, const std::vector<ParamView>& views,
              std::shared_ptr<comm::Communicator> gather_comm = nullptr);
  ~ParamShards();
  ParamShards(const ParamShards&) = delete;
  ParamShards& operator=(const ParamShards&) = delete;
  bool overlaps() const { return worker_.joinable(); }
  // Queues gather(full, first, end) and then `post` on the worker (without one: runs both now);
  // returns the ticket wait_gather takes.
  uint64_t start_gather(float* full, size_t first, size_t end, std::function<void()> post);
  // Queues gather_slice(full, t, e0, e1) (over the gathers' communicator) and then `post` on the
  // worker, as start_gather does; without a worker runs both now.
  uint64_t start_gather_slice(float* full, size_t t, int64_t e0, int64_t e1, std::function<void()> post);
  // Blocks until the ticket's gather (and every one before it) is done; rethrows its failure.
  void wait_gather(uint64_t ticket);

  int64_t part_length() const { return part_length_; }
  const ShardLayout& layout() const { return layout_; }
  std::shared_ptr<FloatStorage> params() const { return params_; }
  std::shared_ptr<FloatStorage> grads() const { return grads_; }

  // This rank's part <- its elements of `full` (flat like the views; no communication).
  void take_part(const float* full);
  // Tensors [first, end) of `full` <- every rank's part of them (a collective).
  void gather(float* full, size_t first, size_t end);
  // This rank's gradient part += the world sum of tensors [first, end) of `full_grads` (a
  // collective; the caller divides the step's sum by dp once); the range is then released (zero).
  void reduce_scatter(float* full_grads, size_t first, size_t end);
  // Releases tensors [first, end) of a flat buffer of `elem_bytes` per element (4: fp32, 2: bf16).
  void release(void* full, size_t first, size_t end, size_t elem_bytes = 4) const;

  // A slice of one tensor (the vocabulary slices of the embedding and LM head): elements
  // [e0, e1) of tensor t, in the tensor's own coordinates. Each lies in the parts of one or two
  // owners, so the gather is one broadcast per owner (on the caller's communicator) and the
  // reduction one reduce-scatter per piece with only the owner's chunk filled (the sum's order is
  // reduce_scatter's). Collectives: every rank calls them with the same slices in the same order.
  void gather_slice(float* full, size_t t, int64_t e0, int64_t e1, comm::Communicator* via = nullptr);
  // This rank's gradient part += the world sum of the slice of full_grads; the slice then released.
  void reduce_slice(float* full_grads, size_t t, int64_t e0, int64_t e1);
  void release_slice(void* full, size_t t, int64_t e0, int64_t e1, size_t elem_bytes = 4) const;

  // Blocks of a matrix tensor t of `cols` columns (cut by whole rows: rank r holds rows
  // [r * cr, (r + 1) * cr), cr = chunk / cols), gathered into or reduced from a compact buffer
  // instead of the flat one (the MLP's slices of the intermediate dimension under tiling):
  // - rows: every rank's local rows [r0, r1) <-> buffer rows r * (r1 - r0) + i ([world * (r1 - r0),
  //   cols]; rows past the tensor or the chunk read as zero and are not reduced);
  // - cols: every row's columns sel[j] <-> buffer column j ([rows, sel.size()]; sel[j] < 0: a zero
  //   column, not reduced).
  // The gathers use the gathers' buffers (call them on the worker: start_job), the reductions the
  // caller's; a reduction adds the world sum into this rank's gradient part and releases `g`.
  void gather_rows(float* out, size_t t, int64_t cols, int64_t r0, int64_t r1);
  void reduce_rows(float* g, size_t t, int64_t cols, int64_t r0, int64_t r1);
  void gather_cols(float* out, size_t t, int64_t cols, const std::vector<int64_t>& sel);
  void reduce_cols(float* g, size_t t, int64_t cols, const std::vector<int64_t>& sel);
  // Queues `run` on the gather worker (without one: runs it now); the ticket is wait_gather's.
  uint64_t start_job(std::function<void()> run) { return queue_job(std::move(run)); }
  // Rows per rank of tensor t's part when it has `cols` columns.
  int64_t chunk_rows(size_t t, int64_t cols) const { return layout_.chunks[t] / cols; }
  // Element range [lo, hi) of the flat buffers that tensors [first, end) occupy.
  int64_t flat_lo(size_t first) const { return views_[first].offset; }
  int64_t flat_hi(size_t end) const { return views_[end - 1].offset + (views_[end - 1].numel + 15) / 16 * 16; }

  // Resident accounting for the memory benchmark: bytes of gathered runs held now / at most, and
  // the collectives' buffers.
  void note_resident(int64_t delta_bytes);
  int64_t peak_resident_bytes() const { return peak_; }
  int64_t buffer_bytes() const;

 private:
  // Calls f(full_offset, packed_offset, count) for each run of rank r's packed elements [a, b)
  // of tensors [first, end) that holds real elements (padding left out).
  template <typename F> void for_segments(int r, size_t first, size_t end, int64_t a, int64_t b, F&& f) const;

  std::shared_ptr<comm::Communicator> comm_;
  ShardLayout layout_;
  std::vector<ParamView> views_;
  std::vector<int64_t> starts_;  // each tensor's packed offset
  int64_t part_length_ = 0;
  std::shared_ptr<FloatStorage> params_, grads_;
  std::vector<float> send_, recv_, out_;
  std::vector<float> pack_;  // the gathers' (worker's) packed rows of this rank
  // Moves block rows in pieces: pack(i0, i1, dst) writes this rank's rows [i0, i1) of `width`
  // floats each; unpack(r, i0, i1, src) reads rank r's.
  int64_t rows_per_piece(int64_t width) const;
  template <typename Pack, typename Unpack> void gather_block(int64_t nrows, int64_t width, Pack&& pack, Unpack&& unpack);
  template <typename Fill, typename Add> void reduce_block(int64_t nrows, int64_t width, Fill&& fill, Add&& add);
  int64_t resident_ = 0, peak_ = 0;

  // the gather worker (gather_comm_ set)
  void work();
  struct Job {
    std::function<void()> run;
  };
  uint64_t queue_job(std::function<void()> run);
  std::shared_ptr<comm::Communicator> gather_comm_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  uint64_t queued_ = 0, done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace ua
