// Reusable scratch memory for kernels that need large temporary buffers on every call (flash
// attention's packed copies, the LM head's logits block). A Workspace is a lease on a 64-byte
// aligned buffer from a process-wide pool: the buffer goes back to the pool when the lease ends,
// and the next call of the same size gets the same pages back, already mapped.
// Why: allocating and freeing tens of MB per call made the C library return the pages to the
// kernel and fault them in again on the next call; on the virtual machines here a page fault is
// expensive, and a training step did tens of thousands of them.
// Leases count in a high-water mark of the bytes leased at once (what the kernels need, not what
// the pool keeps). Must never hand one buffer to two live leases; safe to use from any thread.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ua {

class Workspace {
 public:
  // At least `bytes` bytes (a zero size gives a valid, tiny buffer). Contents are unspecified.
  explicit Workspace(int64_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  void* data() const { return p_; }
  float* floats() const { return static_cast<float*>(p_); }
  uint16_t* halves() const { return static_cast<uint16_t*>(p_); }

 private:
  void* p_ = nullptr;
  size_t capacity_ = 0;
};

// A counter of bytes leased at once: every Workspace made with a tracker adds its size while it
// lives and raises the tracker's peak. attention.cc keeps one for attention_scratch_peak_bytes().
class ScratchTracker {
 public:
  void add(int64_t bytes);
  void sub(int64_t bytes) { now_.fetch_sub(bytes); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(now_.load()); }

 private:
  std::atomic<int64_t> now_{0}, peak_{0};
};

// A Workspace whose size counts in `tracker` while it lives.
class TrackedWorkspace : public Workspace {
 public:
  TrackedWorkspace(ScratchTracker& tracker, int64_t bytes);
  ~TrackedWorkspace();

 private:
  ScratchTracker& tracker_;
  int64_t bytes_;
};

// Bytes the pool keeps for future leases (for tests and diagnostics).
int64_t workspace_pool_bytes();

}  // namespace ua
