#!/usr/bin/env bash
# Idempotent project setup used by `npm start` and `npm test`:
#   1. Debian packages the native addon links against (oneDNN, OpenBLAS, Gloo),
#   2. `npm ci` when node_modules is missing or older than package-lock.json,
#   3. the native addon (node-gyp) when any native source is newer than the built addon,
#   4. `tsc` (incremental).
# A second run with nothing changed only does cheap timestamp checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf 'setup: %s\n' "$*" >&2; }

# 1. System packages ----------------------------------------------------------
# Runtime: oneDNN (matrix products, fp32 and bf16), OpenBLAS (the reference sgemm), Gloo
# (CPU collectives) and a font for the text of plot_loss pictures. `--test` adds what the test
# suite starts itself: an OpenSSH server and client (ssh launcher tests), Chromium (visualizer
# tests), and iproute2 and nftables (the multi-host test in network namespaces, with packet
# loss and partitions made by nftables).
pkgs=(libdnnl-dev libopenblas-dev libgloo-dev fonts-dejavu-core)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(openssh-server openssh-client chromium iproute2 nftables)
fi
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get update && apt-get install -y ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them as root, then run this again:"
    printf '  sudo sh -c "%s"\n' "$cmd" >&2
    exit 1
  fi
fi

# 2. npm dependencies ---------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 3a. CUDA engine -------------------------------------------------------------
# When nvcc is found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin) native/cuda is compiled for
# sm_90 (CUDA_ARCH overrides) into native/build/cuda/libua_cuda.a, which binding.gyp links into
# the addon; without nvcc, or with UA_CUDA=0, the addon holds the stub that says so. make is
# incremental; a failing CUDA compile fails the setup (it is never silently left out).
jobs=$(nproc 2>/dev/null || echo 2)
cuda_lib=native/build/cuda/libua_cuda.a
nvcc_bin=""
if [ "${UA_CUDA:-1}" != "0" ]; then
  for c in "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    if [ -n "$c" ] && [ -x "$c" ]; then nvcc_bin=$c; break; fi
  done
fi
if [ -n "$nvcc_bin" ]; then
  cuda_make=(make -s -C native/cuda NVCC="$nvcc_bin" CUDA_ARCH="${CUDA_ARCH:-90}")
  if ! "${cuda_make[@]}" -q 2>/dev/null; then
    say "building the CUDA engine (sm_${CUDA_ARCH:-90}, $nvcc_bin)"
    "${cuda_make[@]}" -j "$jobs" >&2
  fi
else
  rm -f "$cuda_lib"
fi

# 3. Native addon -------------------------------------------------------------
# Incremental: reconfigure only when binding.gyp or the set of sources changed, then `make`
# through node-gyp (only changed files recompile). A lock keeps concurrent runs from colliding.
addon=native/build/Release/ulysses_native.node
sources=$(cd native && find src -name '*.cc' -o -name '*.h' | sort; [ -f build/cuda/libua_cuda.a ] && echo cuda=1 || echo cuda=0)
# the CUDA archive is no gyp dependency: a newer one forces the relink
if [ -f "$addon" ] && [ -f "$cuda_lib" ] && [ "$cuda_lib" -nt "$addon" ]; then rm -f "$addon"; fi
if [ ! -f "$addon" ] || [ -n "$(find native/binding.gyp native/src -newer "$addon" -print -quit)" ] \
   || [ "$sources" != "$(cat native/build/sources.txt 2>/dev/null)" ]; then
  say "building the native addon"
  gyp_args=()
  # Build against the headers of the running Node.js when they are installed beside it,
  # so no header download is needed.
  node_prefix=$(dirname "$(dirname "$(command -v node)")")
  if [ -f "$node_prefix/include/node/node_api.h" ]; then
    gyp_args+=(--nodedir="$node_prefix")
  fi
  gyp="$root/node_modules/.bin/node-gyp"
  mkdir -p native/build
  (
    flock 9
    cd native
    if [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ] || [ "$sources" != "$(cat build/sources.txt 2>/dev/null)" ]; then
      "$gyp" configure "${gyp_args[@]}" --loglevel=error
    fi
    "$gyp" build -j "$jobs" --loglevel=error >/dev/null
    printf '%s\n' "$sources" > build/sources.txt
    touch "build/Release/ulysses_native.node"
  ) 9>native/build/.lock >&2
fi

# 4. TypeScript ---------------------------------------------------------------
if [ ! -f dist/.tsbuildinfo ] || [ -n "$(find src bench fuzz tsconfig.json -newer dist/.tsbuildinfo -print -quit)" ]; then
  say "tsc"
  node_modules/.bin/tsc -p tsconfig.json
fi
