// What bind_comm.cc shares with other binding families: the communicator behind a JS handle
// (the model's Ulysses attention takes the SP group's). Must never expose the handle layout.
#pragma once
#include <memory>

#include <napi.h>

#include "comm/communicator.h"

namespace ua {

// Throws a coded error (ERR_ARG / ERR_COMM_CLOSED) when info[i] is not a live communicator handle.
std::shared_ptr<comm::Communicator> CommunicatorFromHandle(const Napi::CallbackInfo& info, size_t i);

}  // namespace ua
