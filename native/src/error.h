// The one coded error of the native addon (plain C++, no N-API): kernels, the communicator and
// the model throw it with a code from the README's list (ERR_SHAPE, ERR_CONFIG, ERR_STATE,
// ERR_COMM_TIMEOUT, ...); the bindings turn it into a JS Error carrying the same `code`.
// Must never include N-API or anything beyond the standard library (kernels include it).
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace ua {

struct CodedError : std::runtime_error {
  std::string code;
  CodedError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// What kernels throw on invalid sizes: `throw ShapeError("...")` is a CodedError ERR_SHAPE.
inline CodedError ShapeError(const std::string& msg) { return CodedError("ERR_SHAPE", msg); }

}  // namespace ua
