// The workspace pool (workspace.h): free buffers kept by size; a lease takes the smallest that
// fits, or allocates a new one. At most kMaxFree buffers are kept; beyond that the smallest is
// freed, so a job whose shapes change leaves behind only a bounded amount of memory.
// Must never hold the pool lock while allocating, freeing or touching buffer contents.
#include "workspace.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace ua {

namespace {

constexpr size_t kMaxFree = 16;
constexpr size_t kGranule = 4096;  // sizes are whole pages, so near-equal requests share buffers

struct Buffer {
  void* p;
  size_t capacity;
};

struct Pool {
  std::mutex mu;
  std::vector<Buffer> free;  // unordered; a handful of entries
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: leases may end during static destruction
  return *p;
}

}  // namespace

Workspace::Workspace(int64_t bytes) {
  const size_t want = (static_cast<size_t>(std::max<int64_t>(bytes, 1)) + kGranule - 1) / kGranule * kGranule;
  {
    Pool& pl = pool();
    std::lock_guard<std::mutex> lock(pl.mu);
    size_t best = pl.free.size();
    for (size_t i = 0; i < pl.free.size(); ++i)
      if (pl.free[i].capacity >= want && (best == pl.free.size() || pl.free[i].capacity < pl.free[best].capacity))
        best = i;
    if (best < pl.free.size()) {
      p_ = pl.free[best].p;
      capacity_ = pl.free[best].capacity;
      pl.free[best] = pl.free.back();
      pl.free.pop_back();
      return;
    }
  }
  p_ = std::aligned_alloc(64, want);
  if (!p_) throw std::bad_alloc();
  capacity_ = want;
}

Workspace::~Workspace() {
  void* drop = nullptr;
  {
    Pool& pl = pool();
    std::lock_guard<std::mutex> lock(pl.mu);
    pl.free.push_back({p_, capacity_});
    if (pl.free.size() > kMaxFree) {
      auto smallest = std::min_element(pl.free.begin(), pl.free.end(),
                                       [](const Buffer& a, const Buffer& b) { return a.capacity < b.capacity; });
      drop = smallest->p;
      *smallest = pl.free.back();
      pl.free.pop_back();
    }
  }
  std::free(drop);
}

void ScratchTracker::add(int64_t bytes) {
  const int64_t now = now_.fetch_add(bytes) + bytes;
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
}

TrackedWorkspace::TrackedWorkspace(ScratchTracker& tracker, int64_t bytes)
    : Workspace(bytes), tracker_(tracker), bytes_(((std::max<int64_t>(bytes, 1) + 63) / 64) * 64) {
  tracker_.add(bytes_);
}

TrackedWorkspace::~TrackedWorkspace() { tracker_.sub(bytes_); }

int64_t workspace_pool_bytes() {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mu);
  int64_t total = 0;
  for (const Buffer& b : pl.free) total += static_cast<int64_t>(b.capacity);
  return total;
}

}  // namespace ua
