#!/usr/bin/env bash
# The GPU proof of the CUDA engine, in two halves:
#
#   bash scripts/device-check.sh --prepare
#       here (where the addon was built with nvcc: `bash scripts/setup.sh`): fills .device/
#       (git-ignored) with what the GPU machine lacks, each part xz-compressed: the Node.js binary
#       this machine runs, and a payload of dist/, the built addon and the shared libraries it
#       links beyond glibc and libstdc++ (oneDNN, OpenBLAS, Gloo and theirs). Prints the sizes; the
#       whole must stay under the device tool's 64 MiB working-tree limit.
#
#   bash scripts/device-check.sh
#       on the GPU machine (run through the device tool with carry [".device"]; no network, no
#       Node.js, no npm packages needed: the engine imports none): unpacks .device/, checks that the
#       addon loads (else rebuilds it when node-gyp and the oneDNN/Gloo headers are there, else
#       reports the loader's error), then runs bench/deviceCheck.ts: availability, the device,
#       where cuBLAS and NCCL were found (the Python wheels' nvidia/*/lib folders), every CUDA
#       kernel against the CPU kernel (the cases of test/cuda/kernels.test.ts), an NCCL id, the
#       cuBLAS bf16 GEMM rate and `bench step --device cuda`. Writes $OUT/device-check/
#       (report.json, log.txt, nvidia-smi.txt, ldd.txt); exit 0 only when every check passed.
#       Each part has its own time limit; the whole stays well inside 10 minutes.
#
# Must never download anything, and never write outside .device/, dist/, native/build/ and $OUT.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dev=.device
say() { printf 'device-check: %s\n' "$*" >&2; }

unxz_to() { # unxz_to SRC DST: xz if installed, else Python's lzma
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}

if [ "${1:-}" = "--prepare" ]; then
  addon=native/build/Release/ulysses_native.node
  [ -f "$addon" ] && [ -f dist/bench/deviceCheck.js ] || { say "build first: bash scripts/setup.sh"; exit 1; }
  [ -f native/build/cuda/libua_cuda.a ] || { say "the addon was built without CUDA (no nvcc): nothing to prove on a GPU"; exit 1; }
  rm -rf "$dev" && mkdir -p "$dev/stage/$dev/lib"
  # the addon's shared libraries beyond what every Linux has (glibc, libstdc++, libgcc_s)
  ldd "$addon" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libstdc++.so*|libgcc_s.so*|ld-linux*) ;;
      *) cp -L "$lib" "$dev/stage/$dev/lib/" ;;
    esac
  done
  mkdir -p "$dev/stage/native/build/Release"
  cp "$addon" "$dev/stage/native/build/Release/"
  cp -r dist "$dev/stage/dist"
  tar -C "$dev/stage" -cf - "$dev" native dist | xz -6 -T1 > "$dev/payload.tar.xz"
  xz -6 -T1 -c "$(readlink -f "$(command -v node)")" > "$dev/node.xz"
  rm -rf "$dev/stage"
  du -b "$dev"/* | awk '{printf "%8.1f MiB  %s\n", $1 / 1048576, $2}' >&2
  total=$(du -cb "$dev"/* | tail -1 | cut -f1)
  printf '%8.1f MiB  total (limit 64 MiB with the working tree)\n' "$(echo "$total / 1048576" | bc -l)" >&2
  exit 0
fi

out=${OUT:-$root/device-check-out}/device-check
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
[ -f "$dev/node.xz" ] && [ -f "$dev/payload.tar.xz" ] || { say "no .device/: run \`bash scripts/device-check.sh --prepare\` where the addon was built, then carry .device"; exit 2; }
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed (see nvidia-smi.txt)"
bin=$root/$dev/bin && mkdir -p "$bin"
unxz_to "$dev/node.xz" "$bin/node" && chmod +x "$bin/node"
export PATH=$bin:$PATH
unxz_to "$dev/payload.tar.xz" "$dev/payload.tar"
tar -xf "$dev/payload.tar" && rm -f "$dev/payload.tar"
export LD_LIBRARY_PATH=$root/$dev/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# cuBLAS and NCCL from the Python wheels, named outright (the addon also searches there itself)
if wheels=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/lib*.so*")})))' 2>/dev/null); then
  export UA_CUDA_LIBRARY_PATH=$wheels
fi
say "node $(node --version); UA_CUDA_LIBRARY_PATH=${UA_CUDA_LIBRARY_PATH:-}"
addon=native/build/Release/ulysses_native.node
ldd "$addon" > "$out/ldd.txt" 2>&1 || true
if ! node -e "require('./$addon')" 2> "$out/load-error.txt"; then
  say "the carried addon does not load: $(head -c 400 "$out/load-error.txt")"
  if [ -x node_modules/.bin/node-gyp ] && [ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && [ -d /usr/include/gloo ]; then
    say "rebuilding it here"; timeout 300 bash scripts/setup.sh
  else
    say "cannot rebuild here (needs node-gyp and the oneDNN and Gloo headers); see ldd.txt"; exit 1
  fi
fi
timeout 420 node dist/bench/deviceCheck.js "$out/report.json"
