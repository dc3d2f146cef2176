// POSIX shared-memory segments for the local all-to-all (see shm.h). Must never unmap or shrink a
// region a peer may still read, and never throw anything but std::runtime_error.
#include "comm/shm.h"

#include <fcntl.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace ua::comm {

namespace {

// Names carry their owner's pid first (`/ua-comm-p<pid>-<token>-<rank>`), so the next job on this
// host can remove the names of an owner that died before unlinking them (src/actors/sweepStale.ts
// reads this layout).
std::string seg_name(int32_t owner, const std::string& token, int rank) {
  return "/ua-comm-p" + std::to_string(owner) + "-" + token + "-" + std::to_string(rank);
}
std::string win_name(int32_t owner, const std::string& token, int rank) {
  return "/ua-win-p" + std::to_string(owner) + "-" + token + "-" + std::to_string(rank);
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("shared memory: " + what + ": " + std::strerror(errno)); }

// Capacity rounded up to 2 MiB so repeated small growth does not remap every call.
size_t round_cap(size_t bytes) {
  const size_t q = size_t(2) << 20;
  return (bytes + q - 1) / q * q;
}

// Layout: [header page: uint32 seq at 0, int32 pid at 64, uint32 sleeping at 128, uint32 pack
//          mode at 192 (rank 0's is read by every member: 0 non-temporal, 1 plain), uint64
//          announced output and input offsets + 1 at 256 and 264 (0: none)]
//         [parity 0: cap][parity 1: cap].
// `sleeping` is nonzero while the owner may be asleep in a futex wait on some peer's seq word.
constexpr size_t kHeader = 4096;

std::atomic<uint32_t>* seq_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint32_t>*>(ctl); }
int32_t* pid_word(uint8_t* ctl) { return reinterpret_cast<int32_t*>(ctl + 64); }
std::atomic<uint32_t>* sleeping_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint32_t>*>(ctl + 128); }
std::atomic<uint32_t>* mode_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint32_t>*>(ctl + 192); }
std::atomic<uint64_t>* recv_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint64_t>*>(ctl + 256); }
std::atomic<uint64_t>* send_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint64_t>*>(ctl + 264); }

constexpr size_t kPage = 4096;

uint8_t* map_window(int fd) {
  // MAP_NORESERVE: the range is address space only; pages exist once written (and the segment
  // covers them).
  void* p = mmap(nullptr, ShmWindow::kReserve, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) fail("mmap window");
  return static_cast<uint8_t*>(p);
}

uint8_t* map_header(int fd, bool writable) {
  void* p = mmap(nullptr, kHeader, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap header");
  return static_cast<uint8_t*>(p);
}

}  // namespace

void copy_to_shared(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  // Short copies: a partial line written non-temporally costs more than it saves.
  if (n < 256) {
    std::memcpy(d, s, n);
    return;
  }
  const size_t head = (64 - (reinterpret_cast<uintptr_t>(d) & 63)) & 63;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  const size_t body = n & ~size_t(63);
#if defined(__AVX512F__)
  for (size_t i = 0; i < body; i += 64)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), _mm512_loadu_si512(reinterpret_cast<const void*>(s + i)));
#elif defined(__AVX__)
  for (size_t i = 0; i < body; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
#else
  for (size_t i = 0; i < body; i += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
#endif
  std::memcpy(d + body, s + body, n - body);
}

namespace {
void plain_copy(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }
}  // namespace

double ShmExchange::cost(int mode) const {
  const auto& h = pack_cost_[mode];
  const size_t n = std::min<size_t>(h.count, h.samples.size());
  if (n == 0) return 0;
  std::array<double, kCostSamples> v{};
  std::copy_n(h.samples.begin(), n, v.begin());
  std::nth_element(v.begin(), v.begin() + n / 2, v.begin() + n);
  return v[n / 2];
}

ShmExchange::CopyFn ShmExchange::pack_copy() {
  pack_calls_++;
  if (rank_ == 0) {
    // Unmeasured modes are tried first; then the cheaper one wins.
    const double c0 = cost(0), c1 = cost(1);
    const uint32_t best = c0 == 0 ? 0 : c1 == 0 ? 1 : c1 < c0 ? 1 : 0;
    if (mode_word(ctl_[0])->load(std::memory_order_relaxed) != best) mode_word(ctl_[0])->store(best, std::memory_order_relaxed);
  }
  // Every member makes the same calls, so all explore the other mode on the same ones.
  const uint32_t best = mode_word(ctl_[0])->load(std::memory_order_relaxed) & 1;
  pack_mode_ = static_cast<int>(pack_calls_ % 32 == 0 ? 1 - best : best);
  return pack_mode_ == 0 ? copy_to_shared : plain_copy;
}

void ShmExchange::record_call(double seconds, size_t bytes) {
  // Only the leader decides; shorter exchanges are too noisy to time (and matter little).
  if (rank_ != 0 || bytes < (size_t(512) << 10)) return;
  auto& h = pack_cost_[pack_mode_];
  h.samples[h.count++ % h.samples.size()] = seconds / static_cast<double>(bytes);
}

ShmWindow::ShmWindow(int fd) : fd_(fd) {
  try {
    base_ = map_window(fd_);
  } catch (...) {
    close(fd_);
    throw;
  }
}

ShmWindow::~ShmWindow() {
  munmap(base_, kReserve);
  close(fd_);
}

size_t ShmWindow::allocate(size_t bytes) {
  const size_t len = std::max(kPage, (bytes + kPage - 1) / kPage * kPage);
  std::lock_guard<std::mutex> lock(mu_);
  // The pages are allocated here (fallocate), so a full /dev/shm shows up as a failed allocation
  // (the caller falls back to ordinary memory) rather than as SIGBUS on a later write.
  auto reserve = [&](size_t off) { return fallocate(fd_, 0, static_cast<off_t>(off), static_cast<off_t>(len)) == 0; };
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < len) continue;
    const size_t off = it->first;
    if (!reserve(off)) return SIZE_MAX;
    const size_t left = it->second - len;
    free_.erase(it);
    if (left) free_.emplace(off + len, left);
    return off;
  }
  if (len > kReserve - size_) return SIZE_MAX;
  if (ftruncate(fd_, static_cast<off_t>(size_ + len)) != 0) return SIZE_MAX;
  if (!reserve(size_)) {
    // Back to the old size (nothing beyond it is handed out either way).
    if (ftruncate(fd_, static_cast<off_t>(size_)) != 0) {}
    return SIZE_MAX;
  }
  const size_t off = size_;
  size_ += len;
  return off;
}

void ShmWindow::release(size_t offset, size_t bytes) {
  const size_t len = std::max(kPage, (bytes + kPage - 1) / kPage * kPage);
  std::lock_guard<std::mutex> lock(mu_);
  // Give the memory back; a later allocation of the range starts from zeros again.
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0)
    std::memset(base_ + offset, 0, len);
  auto it = free_.emplace(offset, len).first;
  auto next = std::next(it);
  if (next != free_.end() && it->first + it->second == next->first) {
    it->second += next->second;
    free_.erase(next);
  }
  if (it != free_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      free_.erase(it);
    }
  }
}

size_t ShmWindow::offset_of(const void* p, size_t n) const {
  const auto* b = static_cast<const uint8_t*>(p);
  if (b < base_) return SIZE_MAX;
  const size_t off = static_cast<size_t>(b - base_);
  std::lock_guard<std::mutex> lock(mu_);
  return off <= size_ && n <= size_ - off ? off : SIZE_MAX;
}

std::string host_identity() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string boot;
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::getline(f, boot);
  // A network namespace counts as a host of its own: processes in different ones reach each
  // other through the network, as the hosts of a test cluster built from namespaces must.
  char ns[64] = {0};
  const ssize_t n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
  return std::string(host) + "|" + boot + "|" + (n > 0 ? std::string(ns, static_cast<size_t>(n)) : std::string());
}

ShmExchange::ShmExchange(int rank, int size, const std::string& token, const std::vector<int32_t>& pids)
    : rank_(rank), size_(size), token_(token), pids_(pids), peer_fd_(size, -1), peer_map_(size, nullptr), peer_len_(size, 0),
      peer_win_fd_(size, -1), peer_win_(size, nullptr) {
  if (pids_.size() != static_cast<size_t>(size)) throw std::runtime_error("shared memory: one pid per member expected");
  std::string name = seg_name(pids_[rank_], token_, rank_);
  own_fd_ = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (own_fd_ < 0) fail("shm_open " + name);
  if (ftruncate(own_fd_, kHeader) != 0) fail("ftruncate");
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  oversubscribed_ = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < size_;
  ctl_.assign(size, nullptr);
  ctl_[rank_] = map_header(own_fd_, true);
  *pid_word(ctl_[rank_]) = static_cast<int32_t>(getpid());
  std::string wname = win_name(pids_[rank_], token_, rank_);
  int wfd = shm_open(wname.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (wfd < 0) fail("shm_open " + wname);
  window_ = std::make_shared<ShmWindow>(wfd);
}

ShmExchange::~ShmExchange() {
  if (!unlinked_) {
    shm_unlink(seg_name(pids_[rank_], token_, rank_).c_str());
    if (window_) shm_unlink(win_name(pids_[rank_], token_, rank_).c_str());
  }
  if (own_) munmap(own_, own_len_);
  if (own_fd_ >= 0) close(own_fd_);
  for (int i = 0; i < size_; i++) {
    if (ctl_.size() == static_cast<size_t>(size_) && ctl_[i]) munmap(ctl_[i], kHeader);
    if (peer_map_[i]) munmap(const_cast<uint8_t*>(peer_map_[i]), peer_len_[i]);
    if (peer_fd_[i] >= 0) close(peer_fd_[i]);
    if (peer_win_[i]) munmap(peer_win_[i], ShmWindow::kReserve);
    if (peer_win_fd_[i] >= 0) close(peer_win_fd_[i]);
  }
}

void ShmExchange::open_peers() {
  for (int i = 0; i < size_; i++) {
    if (i == rank_) continue;
    std::string name = seg_name(pids_[i], token_, i);
    peer_fd_[i] = shm_open(name.c_str(), O_RDONLY, 0);
    if (peer_fd_[i] < 0) fail("shm_open " + name);
    ctl_[i] = map_header(peer_fd_[i], false);
    std::string wname = win_name(pids_[i], token_, i);
    peer_win_fd_[i] = shm_open(wname.c_str(), O_RDWR, 0);
    if (peer_win_fd_[i] < 0) fail("shm_open " + wname);
    peer_win_[i] = map_window(peer_win_fd_[i]);
  }
}

void ShmExchange::announce(size_t recv_offset, size_t send_offset) {
  // Relaxed: the publish() that follows orders them (its counter store is seq_cst).
  recv_word(ctl_[rank_])->store(recv_offset == SIZE_MAX ? 0 : recv_offset + 1, std::memory_order_relaxed);
  send_word(ctl_[rank_])->store(send_offset == SIZE_MAX ? 0 : send_offset + 1, std::memory_order_relaxed);
}

size_t ShmExchange::peer_recv_offset(int rank) const {
  const uint64_t v = recv_word(ctl_[rank])->load(std::memory_order_acquire);
  return v == 0 ? SIZE_MAX : static_cast<size_t>(v - 1);
}

size_t ShmExchange::peer_send_offset(int rank) const {
  const uint64_t v = send_word(ctl_[rank])->load(std::memory_order_acquire);
  return v == 0 ? SIZE_MAX : static_cast<size_t>(v - 1);
}

void ShmExchange::unlink_own() {
  if (unlinked_) return;
  unlinked_ = true;
  const bool a = shm_unlink(seg_name(pids_[rank_], token_, rank_).c_str()) == 0;
  const bool b = shm_unlink(win_name(pids_[rank_], token_, rank_).c_str()) == 0;
  if (!a || !b) fail("shm_unlink");
}

void ShmExchange::grow(size_t bytes) {
  size_t cap = round_cap(bytes);
  size_t len = 2 * cap;
  if (ftruncate(own_fd_, static_cast<off_t>(kHeader + len)) != 0) fail("ftruncate");
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, own_fd_, kHeader);
  if (p == MAP_FAILED) fail("mmap");
  if (own_) munmap(own_, own_len_);
  own_ = static_cast<uint8_t*>(p);
  own_len_ = len;
  cap_ = cap;
}

const uint8_t* ShmExchange::peer(int rank, int parity) {
  if (rank == rank_) return own(parity);
  size_t len = 2 * cap_;
  if (peer_len_[rank] != len) {
    // The owner truncated its segment to this size before the barrier that preceded this read.
    struct stat st;
    if (fstat(peer_fd_[rank], &st) != 0) fail("fstat");
    if (static_cast<size_t>(st.st_size) < kHeader + len) {
      errno = EPROTO;
      fail("peer segment smaller than agreed (" + std::to_string(st.st_size) + " < " + std::to_string(len) + ")");
    }
    void* p = mmap(nullptr, len, PROT_READ, MAP_SHARED, peer_fd_[rank], kHeader);
    if (p == MAP_FAILED) fail("mmap peer");
    if (peer_map_[rank]) munmap(const_cast<uint8_t*>(peer_map_[rank]), peer_len_[rank]);
    peer_map_[rank] = static_cast<const uint8_t*>(p);
    peer_len_[rank] = len;
  }
  return peer_map_[rank] + static_cast<size_t>(parity) * cap_;
}

void ShmExchange::publish() {
  // Non-temporal stores (copy_to_shared) are not ordered by the store below.
  _mm_sfence();
  auto* mine = seq_word(ctl_[rank_]);
  mine->store(++seq_, std::memory_order_seq_cst);
  // Waiters sleep on this word. Wake them only if one announced it may sleep: it stores its flag
  // then reloads our word (both seq_cst), so either it sees the new value and does not sleep, or
  // we see its flag here; FUTEX_WAIT itself rechecks the word, so a wake cannot be lost between.
  for (int i = 0; i < size_; i++) {
    if (i != rank_ && sleeping_word(ctl_[i])->load(std::memory_order_seq_cst) != 0) {
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(mine), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
      break;
    }
  }
}

void ShmExchange::wait_for(int peer, uint32_t target, int64_t timeout_ms) {
  using clock = std::chrono::steady_clock;
  auto* w = seq_word(ctl_[peer]);
  auto arrived = [&] { return static_cast<int32_t>(w->load(std::memory_order_acquire) - target) >= 0; };
  if (arrived()) return;
  // The common case: the peer gets there within a short while (its ranks entered the collective
  // at slightly different times). Spin up to kSpin before sleeping on the futex: a sleeper's
  // wake-up adds tens of microseconds (a virtual CPU may have to be woken) to the critical path.
  // No sched_yield in between: on a busy machine a yielding poller can lose the core for a whole
  // time slice, while a futex sleeper is woken with priority. With more members than CPUs,
  // spinning only takes time from the peer we wait for: sleep sooner.
  const auto kSpin = std::chrono::microseconds(oversubscribed_ ? 50 : 250);
  const auto start = clock::now();
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (arrived()) return;
      _mm_pause();
    }
    if (clock::now() - start >= kSpin) break;
  }
  const auto deadline = start + std::chrono::milliseconds(timeout_ms);
  auto* sleeping = sleeping_word(ctl_[rank_]);
  for (;;) {
    uint32_t v = w->load(std::memory_order_acquire);
    if (static_cast<int32_t>(v - target) >= 0) return;
    auto now = clock::now();
    if (now >= deadline)
      throw ShmTimeout("rank " + std::to_string(peer) + " made no progress within " + std::to_string(timeout_ms) + " ms");
    int32_t pid = *pid_word(ctl_[peer]);
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
      throw ShmPeerDead("rank " + std::to_string(peer) + " (pid " + std::to_string(pid) + ") is gone");
    // Sleep until the peer's word changes, at most 20 ms between liveness checks.
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
    long ns = static_cast<long>(std::min<int64_t>(left, 20'000'000));
    struct timespec ts = {ns / 1'000'000'000, ns % 1'000'000'000};
    sleeping->store(1, std::memory_order_seq_cst);
    v = w->load(std::memory_order_seq_cst);
    if (static_cast<int32_t>(v - target) < 0)
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT, v, &ts, nullptr, 0);
    sleeping->store(0, std::memory_order_relaxed);
  }
}

void ShmExchange::barrier(int64_t timeout_ms) {
  publish();
  for (int i = 0; i < size_; i++)
    if (i != rank_) wait_for(i, seq_, timeout_ms);
}

}  // namespace ua::comm
