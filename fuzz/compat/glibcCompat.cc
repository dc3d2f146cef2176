// Three symbols that @jazzer.js/fuzzer's prebuilt libFuzzer addon takes from glibc 2.38 and the
// libstdc++ of GCC 13, defined over what older systems (glibc 2.36, GCC 12) have, so the addon
// loads there. Built and preloaded by fuzz/compat/fuzzerAddon.ts only when the prebuilt addon
// does not load as shipped; on a system that has these versions it must never be preloaded
// (it would shadow glibc's own C23 strtol).
#include <cstdlib>
#include <ios>

// glibc 2.38 maps strtol to these when compiling for C23/C++23 (they also accept "0b" binary
// prefixes); libFuzzer parses decimal flag values with them, so the C99 functions do the same job.
extern "C" long __isoc23_strtol(const char* s, char** end, int base) { return std::strtol(s, end, base); }
extern "C" unsigned long __isoc23_strtoul(const char* s, char** end, int base) { return std::strtoul(s, end, base); }

namespace std {
// GCC 13's <iostream> calls this instead of constructing a static ios_base::Init in every
// translation unit; constructing one here initializes the standard streams the same way.
void ios_base_library_init() { static ios_base::Init init; }
}  // namespace std
