// Coded errors of the communicator layer (plain C++, no N-API): the binding turns them into JS
// errors with the same code. Must never depend on N-API or throw anything but CommError out of
// the public API.
#pragma once
#include <stdexcept>
#include <string>

namespace ua::comm {

// Codes: ERR_COMM_TIMEOUT (a peer or the store did not answer within the timeout),
// ERR_COMM_PEER (a connection broke: a peer died or closed), ERR_COMM_CLOSED (the communicator
// was closed or failed earlier), ERR_COMM_ARG (bad sizes/ranks), ERR_COMM_STORE (store failure).
struct CommError : std::runtime_error {
  std::string code;
  CommError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// Classifies a Gloo exception message as a timeout or a broken connection.
inline CommError classify_gloo_error(const std::string& what, const std::string& during) {
  bool timeout = what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos;
  return CommError(timeout ? "ERR_COMM_TIMEOUT" : "ERR_COMM_PEER", during + ": " + what);
}

}  // namespace ua::comm
