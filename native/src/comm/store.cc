// Store implementations (see store.h). Must never wait without a deadline.
#include "comm/store.h"

#include <gloo/rendezvous/file_store.h>

namespace ua::comm {

std::shared_ptr<Store> make_file_store(const std::string& dir) {
  return std::make_shared<gloo::rendezvous::FileStore>(dir);
}

ScopedStore::ScopedStore(std::shared_ptr<Store> inner, std::string prefix, Millis timeout)
    : inner_(std::move(inner)), prefix_(std::move(prefix)), timeout_(timeout) {}

void ScopedStore::set(const std::string& key, const std::vector<char>& data) { inner_->set(prefix_ + key, data); }

std::vector<char> ScopedStore::get(const std::string& key) {
  // Gloo's stores wait inside get with their own default (30 s); wait first with ours.
  inner_->wait({prefix_ + key}, timeout_);
  return inner_->get(prefix_ + key);
}

void ScopedStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void ScopedStore::wait(const std::vector<std::string>& keys, const Millis& timeout) {
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const auto& k : keys) full.push_back(prefix_ + k);
  inner_->wait(full, std::min(timeout, timeout_));
}

}  // namespace ua::comm
