// Shared-memory exchange for the all-to-all between ranks on one host: each rank owns a POSIX
// shared-memory segment (two halves used alternately, "parities") that its peers map read-only.
// The sender packs straight into its own segment and publishes its progress piece by piece; every
// receiver copies each piece out of the peer's segment as soon as it is published: one copy per
// side instead of TCP's several, and no barrier per call (see Communicator::exchange_shared). A
// single copy (reading the peer's input with process_vm_readv) was measured slower here: 176 us
// for a contiguous 2 MiB read against about 110 us for both copies. The sender writes with
// non-temporal or plain stores, whichever it measures faster (see pack_copy). Synchronization
// is through the segments' own futex words (progress counters), with dead peers detected by pid
// and a deadline. Plain C++ (no N-API).
// Must never leave a named segment behind after setup (names are unlinked once every peer has
// opened them) and never touch a peer's segment beyond the size both sides agreed on.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
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

class ShmExchange {
 public:
  // Creates this rank's segment named after `token` (same on every member). Throws std::runtime_error.
  ShmExchange(int rank, int size, const std::string& token);
  ~ShmExchange();
  ShmExchange(const ShmExchange&) = delete;
  ShmExchange& operator=(const ShmExchange&) = delete;

  // Setup, in order, each step separated by a barrier of all members: open the peers' segments,
  // then unlink this rank's name.
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

  // The copy for packing into this rank's segment: copy_to_shared (non-temporal stores) or a
  // plain memcpy. Which is faster depends on where the CPUs sit: when the peers' cores do not
  // share a cache with this one, plain stores must first pull back each line a receiver read
  // (measured 2.5x slower packs), while on cores sharing a cache plain stores win (the receiver
  // then reads from the cache: 147 us against 230 us per 2 MiB exchange). Virtual CPUs can move
  // between the two while a job runs, so the choice is measured: record_pack() after each pack
  // keeps a running cost per byte for each copy, pack_copy() takes the cheaper one and tries the
  // other every 32nd call. Only this rank's speed depends on it; the bytes written are the same.
  using CopyFn = void (*)(void* dst, const void* src, size_t n);
  CopyFn pack_copy();
  void record_pack(double seconds, size_t bytes);

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
  size_t cap_ = 0;
  int own_fd_ = -1;
  uint8_t* own_ = nullptr;
  size_t own_len_ = 0;
  std::vector<int> peer_fd_;
  std::vector<const uint8_t*> peer_map_;
  std::vector<size_t> peer_len_;
  // Header page of every member's segment (this rank's is writable): sequence word and pid.
  std::vector<uint8_t*> ctl_;
  uint32_t seq_ = 0;
  bool unlinked_ = false;
  // More members than CPUs this process may run on: waits sleep sooner instead of polling.
  bool oversubscribed_ = false;
  // pack_copy's state: the copy of the current call (0 non-temporal, 1 plain), calls so far, and
  // the running cost (seconds per byte, 0 while unmeasured) of each.
  int pack_mode_ = 0;
  uint32_t pack_calls_ = 0;
  double pack_cost_[2] = {0, 0};
};

// memcpy into a segment a peer reads after the next barrier: non-temporal stores for the 64-byte
// aligned body of copies of at least 256 bytes (plain memcpy below that, and for the unaligned
// head and tail). The barrier fences them; never use it for memory read back by this thread soon.
void copy_to_shared(void* dst, const void* src, size_t n);

// An identifier of this host (hostname and boot id): ranks with equal ids can share memory.
std::string host_identity();

}  // namespace ua::comm
