// Finds and opens the shared libraries the CUDA engine loads at run time (cuBLAS, NCCL): they are
// not linked, so the addon loads, and every CPU path works, on machines that lack them. Plain C++
// (dlopen), no CUDA and no N-API: compiled into every build, so the search rules are testable on a
// machine without a GPU.
//
// Search order for a library (the first candidate that opens wins):
//   1. its override variable (UA_CUBLAS_LIBRARY, UA_NCCL_LIBRARY): a file, or a folder holding one
//      of the sonames; when set, nothing else is tried (a wrong override is an error, not a
//      silent fallback to another copy);
//   2. each folder of UA_CUDA_LIBRARY_PATH (colon-separated), for every soname;
//   3. the bare sonames (the dynamic loader's own search: LD_LIBRARY_PATH, ld.so.cache, rpath);
//   4. $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64;
//   5. Python wheels: <site-packages>/nvidia/*/lib (nvidia-cublas, nvidia-nccl-cu13, ...) and
//      <site-packages>/torch/lib, for site-packages under $VIRTUAL_ENV, /opt/*/.venv, /usr/local
//      and /usr (lib/python3*/{site,dist}-packages), and ~/.local.
// Must never abort on a missing library: every failure is a LoadResult with the candidates tried.
#pragma once
#include <string>
#include <vector>

namespace ua::dynlib {

struct LibrarySpec {
  const char* name;                   // "cublas", "nccl": what messages call it
  const char* override_env;           // UA_CUBLAS_LIBRARY ...
  std::vector<std::string> sonames;   // most preferred first (libcublas.so.13, libcublas.so.12, ...)
};

const LibrarySpec& cublas_spec();
const LibrarySpec& nccl_spec();

// The candidates, in search order, for the current environment (read at each call).
std::vector<std::string> candidates(const LibrarySpec& spec);

struct LoadResult {
  void* handle = nullptr;            // dlopen handle (RTLD_NOW | RTLD_LOCAL); never closed
  std::string path;                  // the candidate that opened
  std::vector<std::string> tried;    // every candidate tried, in order
  std::string error;                 // why nothing opened (empty on success)
};

// Opens the first candidate that loads. The result is cached per library after the first
// success; a failure is retried on the next call (the environment may have changed).
const LoadResult& load(const LibrarySpec& spec);

// A symbol of a loaded library; throws CodedError ERR_DEVICE naming the library and symbol.
void* symbol(const LoadResult& lib, const char* spec_name, const char* sym);

}  // namespace ua::dynlib
