// POSIX shared-memory segments for the local all-to-all (see shm.h). Must never unmap or shrink a
// region a peer may still read, and never throw anything but std::runtime_error.
#include "comm/shm.h"

#include <fcntl.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace ua::comm {

namespace {

std::string seg_name(const std::string& token, int rank) { return "/ua-comm-" + token + "-" + std::to_string(rank); }

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("shared memory: " + what + ": " + std::strerror(errno)); }

// Capacity rounded up to 2 MiB so repeated small growth does not remap every call.
size_t round_cap(size_t bytes) {
  const size_t q = size_t(2) << 20;
  return (bytes + q - 1) / q * q;
}

// Layout: [header page: uint32 seq at 0, int32 pid at 64][parity 0: cap][parity 1: cap].
constexpr size_t kHeader = 4096;

std::atomic<uint32_t>* seq_word(uint8_t* ctl) { return reinterpret_cast<std::atomic<uint32_t>*>(ctl); }
int32_t* pid_word(uint8_t* ctl) { return reinterpret_cast<int32_t*>(ctl + 64); }

uint8_t* map_header(int fd, bool writable) {
  void* p = mmap(nullptr, kHeader, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap header");
  return static_cast<uint8_t*>(p);
}

}  // namespace

std::string host_identity() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string boot;
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::getline(f, boot);
  return std::string(host) + "|" + boot;
}

ShmExchange::ShmExchange(int rank, int size, const std::string& token)
    : rank_(rank), size_(size), token_(token), peer_fd_(size, -1), peer_map_(size, nullptr), peer_len_(size, 0) {
  std::string name = seg_name(token_, rank_);
  own_fd_ = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (own_fd_ < 0) fail("shm_open " + name);
  if (ftruncate(own_fd_, kHeader) != 0) fail("ftruncate");
  ctl_.assign(size, nullptr);
  ctl_[rank_] = map_header(own_fd_, true);
  *pid_word(ctl_[rank_]) = static_cast<int32_t>(getpid());
}

ShmExchange::~ShmExchange() {
  if (!unlinked_) shm_unlink(seg_name(token_, rank_).c_str());
  if (own_) munmap(own_, own_len_);
  if (own_fd_ >= 0) close(own_fd_);
  for (int i = 0; i < size_; i++) {
    if (ctl_.size() == static_cast<size_t>(size_) && ctl_[i]) munmap(ctl_[i], kHeader);
    if (peer_map_[i]) munmap(const_cast<uint8_t*>(peer_map_[i]), peer_len_[i]);
    if (peer_fd_[i] >= 0) close(peer_fd_[i]);
  }
}

void ShmExchange::open_peers() {
  for (int i = 0; i < size_; i++) {
    if (i == rank_) continue;
    std::string name = seg_name(token_, i);
    peer_fd_[i] = shm_open(name.c_str(), O_RDONLY, 0);
    if (peer_fd_[i] < 0) fail("shm_open " + name);
    ctl_[i] = map_header(peer_fd_[i], false);
  }
}

void ShmExchange::unlink_own() {
  if (!unlinked_ && shm_unlink(seg_name(token_, rank_).c_str()) != 0) fail("shm_unlink");
  unlinked_ = true;
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

void ShmExchange::barrier(int64_t timeout_ms) {
  using clock = std::chrono::steady_clock;
  const uint32_t n = ++seq_;
  auto* mine = seq_word(ctl_[rank_]);
  mine->store(n, std::memory_order_release);
  // Waiters sleep on this word; wake them all (a syscall of about a microsecond).
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(mine), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  for (int i = 0; i < size_; i++) {
    if (i == rank_) continue;
    auto* w = seq_word(ctl_[i]);
    int spins = 0;
    for (;;) {
      uint32_t v = w->load(std::memory_order_acquire);
      if (static_cast<int32_t>(v - n) >= 0) break;
      if (++spins < 2000) {
        _mm_pause();
        continue;
      }
      auto now = clock::now();
      if (now >= deadline)
        throw ShmTimeout("rank " + std::to_string(i) + " did not reach the barrier within " + std::to_string(timeout_ms) + " ms");
      int32_t pid = *pid_word(ctl_[i]);
      if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
        throw ShmPeerDead("rank " + std::to_string(i) + " (pid " + std::to_string(pid) + ") is gone");
      // Sleep until the peer's word changes, at most 20 ms between liveness checks.
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
      long ns = static_cast<long>(std::min<int64_t>(left, 20'000'000));
      struct timespec ts = {ns / 1'000'000'000, ns % 1'000'000'000};
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT, v, &ts, nullptr, 0);
    }
  }
}

}  // namespace ua::comm
