// The run-time library search of dynlib.h: candidate lists from the environment and the usual
// locations, dlopen of the first that loads, symbol lookup with coded errors.
#include "device/dynlib.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "error.h"

namespace ua::dynlib {

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(sep, start);
    const std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::vector<std::string> Glob(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  return out;  // glob sorts its matches: the order is stable
}

// Python site-packages folders that may hold NVIDIA's wheels (existing ones only).
std::vector<std::string> SitePackages() {
  std::vector<std::string> roots;
  const std::string venv = Env("VIRTUAL_ENV");
  if (!venv.empty()) roots.push_back(venv);
  for (const auto& r : Glob("/opt/*/.venv")) roots.push_back(r);
  roots.push_back("/usr/local");
  roots.push_back("/usr");
  const std::string home = Env("HOME");
  if (!home.empty()) roots.push_back(home + "/.local");
  std::vector<std::string> out;
  for (const auto& r : roots)
    for (const char* kind : {"site-packages", "dist-packages"})
      for (const auto& d : Glob(r + "/lib/python3*/" + kind)) out.push_back(d);
  return out;
}

void AddFolder(std::vector<std::string>& out, const std::string& dir, const LibrarySpec& spec) {
  for (const auto& so : spec.sonames) out.push_back(dir + "/" + so);
}

}  // namespace

const LibrarySpec& cublas_spec() {
  static const LibrarySpec s{"cuBLAS", "UA_CUBLAS_LIBRARY", {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}};
  return s;
}

const LibrarySpec& nccl_spec() {
  static const LibrarySpec s{"NCCL", "UA_NCCL_LIBRARY", {"libnccl.so.2", "libnccl.so"}};
  return s;
}

std::vector<std::string> candidates(const LibrarySpec& spec) {
  std::vector<std::string> out;
  const std::string over = Env(spec.override_env);
  if (!over.empty()) {
    if (IsDir(over)) AddFolder(out, over, spec);
    else out.push_back(over);
    return out;
  }
  for (const auto& dir : Split(Env("UA_CUDA_LIBRARY_PATH"), ':')) AddFolder(out, dir, spec);
  for (const auto& so : spec.sonames) out.push_back(so);
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    const std::string root = Env(var);
    if (!root.empty()) AddFolder(out, root + "/lib64", spec);
  }
  AddFolder(out, "/usr/local/cuda/lib64", spec);
  for (const auto& site : SitePackages()) {
    for (const auto& so : spec.sonames)
      for (const auto& hit : Glob(site + "/nvidia/*/lib/" + so)) out.push_back(hit);
    AddFolder(out, site + "/torch/lib", spec);
  }
  return out;
}

const LoadResult& load(const LibrarySpec& spec) {
  static std::mutex mu;
  static std::map<std::string, LoadResult> cache;
  std::lock_guard<std::mutex> lock(mu);
  LoadResult& r = cache[spec.name];
  if (r.handle) return r;
  r = LoadResult{};
  std::string last;
  for (const auto& c : candidates(spec)) {
    r.tried.push_back(c);
    void* h = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      r.handle = h;
      r.path = c;
      return r;
    }
    const char* e = ::dlerror();
    last = e ? e : "unknown dlopen error";
  }
  const std::string over = Env(spec.override_env);
  r.error = std::string(spec.name) + " not found" +
            (over.empty() ? " (set " + std::string(spec.override_env) + " to its file or folder, or add the folder to UA_CUDA_LIBRARY_PATH)"
                          : " at " + std::string(spec.override_env) + "=" + over) +
            (last.empty() ? "" : "; last error: " + last);
  return r;
}

void* symbol(const LoadResult& lib, const char* spec_name, const char* sym) {
  if (!lib.handle) throw CodedError("ERR_DEVICE", std::string(spec_name) + ": " + lib.error);
  void* p = ::dlsym(lib.handle, sym);
  if (!p) throw CodedError("ERR_DEVICE", std::string(spec_name) + " at " + lib.path + " has no symbol " + sym);
  return p;
}

}  // namespace ua::dynlib
