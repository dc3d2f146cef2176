// Shared-memory exchange for the all-to-all between ranks on one host. Each rank owns two POSIX
// shared-memory segments that every peer maps: an exchange segment (a header with progress words,
// then two halves used alternately, "parities", that peers map read-only) and a window (read-write
// for every member) from which the communicator hands out all-to-all buffers. A chunk whose
// receiver's output lies in its window is written by the sender straight into it, and one whose
// sender's input lies in its window is read by the receiver straight out of it: one copy. Other
// chunks go through the sender's exchange segment: the sender packs into it and publishes its
// progress piece by piece, and every receiver copies each piece out as soon as it is published:
// one copy per side instead of TCP's several, and no barrier per call (see
// Communicator::exchange_shared). Reading the peer's memory with process_vm_readv was measured
// slower than either (176 us for a contiguous 2 MiB read). The sender writes with non-temporal or
// plain stores, whichever it measures faster (see pack_copy). Synchronization is through the
// segments' own futex words (progress counters), with dead peers detected by pid and a deadline.
// Plain C++ (no N-API).
// Must never leave a named segment behind after setup (names are unlinked once every peer has
// opened them) and never touch a peer's memory beyond the size both sides agreed on.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace ua::comm {

struct ShmTimeout : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShmPeerDead : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// This rank's window: a second shared segment that every member maps read-write for the life
// of the communicator, from which the communicator hands out buffers (Communicator::buffer).
// When an all-to-all's output lies in the receiver's window, each sender writes its chunk
// straight into it; when its input lies in the sender's window, each receiver reads its chunk
// straight out of it: one copy per byte instead of two (see Communicator::exchange_shared).
// The whole address range is mapped once (kReserve bytes, on every member) and the segment file
// only grows, so neither this rank's pointers nor a peer's mapping ever move. Released ranges
// are punched out (memory returned, reads give zeros). Thread-safe. Must never hand out a range
// twice or beyond the segment's size.
class ShmWindow {
 public:
  // Mapped address range per window (virtual only: memory is used as buffers are written). Every
  // member maps every member's window, so this times the group size is address space per
  // communicator; buffers that do not fit are ordinary memory (exchanged with two copies).
  static constexpr size_t kReserve = size_t(64) << 30;
  // Takes ownership of `fd` (this rank's window segment, opened read-write).
  explicit ShmWindow(int fd);
  ~ShmWindow();
  ShmWindow(const ShmWindow&) = delete;
  ShmWindow& operator=(const ShmWindow&) = delete;

  uint8_t* base() const { return base_; }
  // Offset of a fresh, zeroed, page-aligned range of `bytes`; SIZE_MAX when the window cannot
  // hold it (the caller then uses ordinary memory).
  size_t allocate(size_t bytes);
  void release(size_t offset, size_t bytes);
  // Offset of [p, p + n) when the whole range lies inside the segment, else SIZE_MAX.
  size_t offset_of(const void* p, size_t n) const;

 private:
  mutable std::mutex mu_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;               // the segment file's size
  std::map<size_t, size_t> free_;  // released ranges below size_: offset -> bytes
};

class ShmExchange {
 public:
  // Creates this rank's segment named after `token` (same on every member) and its own pid
  // (`pids`: every member's, in rank order). Throws std::runtime_error.
  ShmExchange(int rank, int size, const std::string& token, const std::vector<int32_t>& pids);
  ~ShmExchange();
  ShmExchange(const ShmExchange&) = delete;
  ShmExchange& operator=(const ShmExchange&) = delete;

  // Setup, in order, each step separated by a barrier of all members: open the peers' segments
  // (exchange and window), then unlink this rank's names.
  void open_peers();
  void unlink_own();

  // Capacity (bytes per parity) needed for `bytes`; true when it must grow (identical on every
  // member, because every member exchanges the same number of bytes).
  bool needs_growth(size_t bytes) const { return bytes > cap_; }
  // Grows this rank's segment; call only when no peer reads it (after a barrier).
  void grow(size_t bytes);
  // This rank's half for `parity` (cap bytes).
  uint8_t* own(int parity) { return own_ + static_cast<size_t>(parity) * cap_; }
  // Peer's half for `parity`, mapping it again if the agreed capacity grew since the last call.
  const uint8_t* peer(int rank, int parity);
  // This rank's window, and the base of a peer's (mapped read-write; offsets as the peer's own).
  const std::shared_ptr<ShmWindow>& window() const { return window_; }
  uint8_t* peer_window(int rank) const { return peer_win_[rank]; }

  // Announcements for the current collective, valid from this rank's next publish() until the
  // one after the collective's last: where this rank's output and input lie in its window
  // (SIZE_MAX: not in the window). A peer reads them once it saw that publish.
  void announce(size_t recv_offset, size_t send_offset);
  size_t peer_recv_offset(int rank) const;
  size_t peer_send_offset(int rank) const;

  // The copy for packing into this rank's segment: copy_to_shared (non-temporal stores) or a
  // plain memcpy. Which is faster depends on where the CPUs sit: when the members' cores do not
  // share a cache, plain stores must first take back each line a receiver read, and receivers
  // then read lines still dirty in the sender's cache (measured: 0.20 ms per 4 MiB seq->head
  // call with non-temporal stores against 0.36 ms with plain ones); on cores sharing a cache plain
  // stores won (147 us against 230 us per 2 MiB exchange). Virtual CPUs can move between the two
  // while a job runs, so the choice is measured, as whole calls: the cost of a mode shows up on
  // both sides (the sender's stores and the receivers' reads) and in the waits between them, and
  // the copy times alone were measured to pick the slower mode. Rank 0 keeps the median cost per
  // byte of its last calls in each mode, publishes the cheaper mode in its header, and every
  // member packs with it; on every 32nd call all members try the other mode together.
  // Only the speed depends on the mode: the bytes written are the same.
  using CopyFn = void (*)(void* dst, const void* src, size_t n);
  CopyFn pack_copy();
  // The wall time of the exchange whose pack_copy() came last, for `bytes` exchanged.
  void record_call(double seconds, size_t bytes);

  // Progress words: every member's header holds a counter that only its owner advances, by one
  // per publish(). Members make the same sequence of publishes (same collectives, same sizes), so
  // each knows the value a peer's counter reaches at any given point of a collective.
  uint32_t counter() const { return seq_; }
  // Makes everything written to this rank's segment so far visible (a store fence first, so that
  // copy_to_shared's non-temporal stores are ordered), then advances this rank's counter.
  // The futex wake is issued only when a peer announced it may sleep.
  void publish();
  // Waits until `peer`'s counter reaches `target`: spins briefly, then sleeps on the peer's futex
  // word. Throws ShmPeerDead when the peer process is gone and ShmTimeout when the counter does
  // not move for `timeout_ms`.
  void wait_for(int peer, uint32_t target, int64_t timeout_ms);
  // publish(), then wait until every peer's counter reached this rank's.
  void barrier(int64_t timeout_ms);

 private:
  int rank_, size_;
  std::string token_;
  std::vector<int32_t> pids_;
  size_t cap_ = 0;
  int own_fd_ = -1;
  uint8_t* own_ = nullptr;
  size_t own_len_ = 0;
  std::vector<int> peer_fd_;
  std::vector<const uint8_t*> peer_map_;
  std::vector<size_t> peer_len_;
  std::shared_ptr<ShmWindow> window_;
  std::vector<int> peer_win_fd_;
  std::vector<uint8_t*> peer_win_;
  // Header page of every member's segment (this rank's is writable): sequence word and pid.
  std::vector<uint8_t*> ctl_;
  uint32_t seq_ = 0;
  bool unlinked_ = false;
  // More members than CPUs this process may run on: waits sleep sooner instead of polling.
  bool oversubscribed_ = false;
  // pack_copy's state: the copy of the current call (0 non-temporal, 1 plain), calls so far, and
  // each mode's last call costs (seconds per byte; median taken by cost(), 0 while unmeasured).
  static constexpr size_t kCostSamples = 5;
  struct CostHistory {
    std::array<double, kCostSamples> samples{};
    size_t count = 0;
  };
  double cost(int mode) const;
  int pack_mode_ = 0;
  uint32_t pack_calls_ = 0;
  CostHistory pack_cost_[2];
};

// memcpy into shared memory a peer reads after this rank's next publish(): non-temporal stores for
// the 64-byte aligned body of copies of at least 256 bytes (plain memcpy below that, and for the
// unaligned head and tail). publish() fences them; never use it for memory read back by this
// thread soon.
void copy_to_shared(void* dst, const void* src, size_t n);

// An identifier of this host (hostname, boot id and network namespace): ranks with equal ids
// share memory.
std::string host_identity();

}  // namespace ua::comm
