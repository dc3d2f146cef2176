// Binding of read-only file mappings: the token cache's arrays are mapped by every rank instead
// of being read into each process, so the page cache holds one copy for all ranks of a host.
// A mapping is private copy-on-write over a file opened read-only: a stray write from JS changes
// this process's copy of one page, never the file, and never faults. A mapped file must never be
// truncated in place by its writer (the token cache writes a new directory and renames it), or
// readers would fault on the lost pages.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>

#include "napi_util.h"

namespace ua {

namespace {

struct Mapping {
  void* addr;
  size_t length;
};

// Live mappings by address (main thread only: mapFile, unmapFile and the finalizer all run there).
std::unordered_map<void*, Mapping*>& Live() {
  static std::unordered_map<void*, Mapping*> live;
  return live;
}

void Release(Mapping* m) {
  if (m->addr != nullptr) {
    munmap(m->addr, m->length);
    Live().erase(m->addr);
    m->addr = nullptr;
  }
}

std::string Errno(int err) { return std::string(std::strerror(err)); }

// mapFile(path: string, offset: number, length: number) -> ArrayBuffer over [offset, offset+length)
// of the file; offset a multiple of the page size; length 0 gives an empty buffer.
Napi::Value MapFile(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) Fail("ERR_ARG", "path: expected a string");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const int64_t offset = GetInt(info, 1, "offset", 0);
    const int64_t length = GetInt(info, 2, "length", 0);
    const int64_t page = sysconf(_SC_PAGESIZE);
    if (offset % page != 0)
      Fail("ERR_ARG", "offset: expected a multiple of the page size " + std::to_string(page) + ", got " + std::to_string(offset));
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail("ERR_FILE", "cannot open " + path + ": " + Errno(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int err = errno;
      close(fd);
      Fail("ERR_FILE", "cannot stat " + path + ": " + Errno(err));
    }
    if (offset + length > static_cast<int64_t>(st.st_size)) {
      close(fd);
      Fail("ERR_FILE", path + ": cannot map bytes [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                           "): the file holds " + std::to_string(st.st_size));
    }
    if (length == 0) {
      close(fd);
      return Napi::ArrayBuffer::New(env, 0);
    }
    void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, offset);
    const int err = errno;
    close(fd);  // the mapping keeps the file
    if (addr == MAP_FAILED) Fail("ERR_FILE", "cannot map " + path + ": " + Errno(err));
    auto* m = new Mapping{addr, static_cast<size_t>(length)};
    Live()[addr] = m;
    return Napi::ArrayBuffer::New(
        env, addr, static_cast<size_t>(length),
        [](Napi::Env, void*, Mapping* mapping) {
          Release(mapping);
          delete mapping;
        },
        m);
  });
}

// unmapFile(buffer: ArrayBuffer) -> boolean: detaches a buffer of mapFile (so no JS view can read
// it again) and unmaps it now; false when it was already released. Safe to call twice.
Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsArrayBuffer()) Fail("ERR_ARG", "buffer: expected an ArrayBuffer of mapFile");
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    if (ab.ByteLength() == 0) return Napi::Boolean::New(env, false);
    auto it = Live().find(ab.Data());
    if (it == Live().end()) Fail("ERR_ARG", "buffer: not a live mapping of mapFile");
    Mapping* m = it->second;
    ab.Detach();  // first: no view may reach the pages once they are gone
    Release(m);   // the finalizer, now or at collection, only frees the record
    return Napi::Boolean::New(env, true);
  });
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, MapFile, "mapFile"));
  exports.Set("unmapFile", Napi::Function::New(env, UnmapFile, "unmapFile"));
}

}  // namespace ua
