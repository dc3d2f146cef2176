// Key-value stores used for the Gloo rendezvous (each rank publishes its address, reads the others').
// The interface is gloo::rendezvous::Store; here: a file store for tests and single-host jobs, a
// scoping wrapper (prefix + timeout) used for sub-groups, and a callback store whose operations
// are plain std::functions so a binding can forward them to JS (the coordinator's ZeroMQ store).
// Must never block without a deadline: every wait/get has the communicator's timeout.
#pragma once
#include <gloo/rendezvous/store.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ua::comm {

using Store = gloo::rendezvous::Store;
using Millis = std::chrono::milliseconds;

// A store over files in a directory shared by every rank (gloo's FileStore).
std::shared_ptr<Store> make_file_store(const std::string& dir);

// Adds `prefix` to every key and applies `timeout` to every wait/get. Keeps `inner` alive.
class ScopedStore : public Store {
 public:
  ScopedStore(std::shared_ptr<Store> inner, std::string prefix, Millis timeout);
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const Millis& timeout) override;

 private:
  std::shared_ptr<Store> inner_;
  std::string prefix_;
  Millis timeout_;
};

// A store whose operations are supplied as functions. `get` must return the value once the key
// exists (waiting up to the timeout); `wait` returns once every key exists. Each may throw
// CodedError (e.g. ERR_COMM_TIMEOUT).
struct StoreCallbacks {
  std::function<void(const std::string&, const std::vector<char>&, Millis)> set;
  std::function<std::vector<char>(const std::string&, Millis)> get;
  std::function<void(const std::vector<std::string>&, Millis)> wait;
};

class CallbackStore : public Store {
 public:
  CallbackStore(StoreCallbacks cb, Millis timeout) : cb_(std::move(cb)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { cb_.set(key, data, timeout_); }
  std::vector<char> get(const std::string& key) override { return cb_.get(key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { cb_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const Millis& timeout) override { cb_.wait(keys, timeout); }

 private:
  StoreCallbacks cb_;
  Millis timeout_;
};

}  // namespace ua::comm
