// Shared-memory exchange for the all-to-all between ranks on one host: each rank owns a POSIX
// shared-memory segment (two halves used alternately, "parities") that its peers map read-only.
// The sender packs straight into its own segment; after a barrier every receiver copies its chunk
// out of each peer's segment: one copy per side instead of TCP's several. Synchronization and
// failure detection stay with the caller (Gloo barriers with timeouts). Plain C++ (no N-API).
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

  // Barrier through the segments' header words: publish arrival `n`, then wait until every peer
  // published n. Spins briefly, then sleeps on a futex. Throws ShmPeerDead when a peer process is
  // gone and ShmTimeout at `timeout_ms`.
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
};

// An identifier of this host (hostname and boot id): ranks with equal ids can share memory.
std::string host_identity();

}  // namespace ua::comm
