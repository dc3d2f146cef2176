#!/usr/bin/env bash
# Writes a random-initialized HF checkpoint directory (config.json + model.safetensors, F32) for
# every example model config under examples/models, into OUT_DIR/<name>, so the example jobs can
# start from real weight files without a download. It only calls `ulysses-actors init-model`;
# it never deletes anything and refuses a non-empty OUT_DIR/<name> (pass --force to replace).
#   bash examples/make_random_checkpoint.sh OUT_DIR [--seed N] [--force]
# then e.g.:
#   ulysses-actors up examples/train_full/qwen2_5_full_sft_ulysses.yaml \
#     --model_name_or_path OUT_DIR/qwen2.5-mini --sequence_parallel_size 2 --max_steps 20
set -euo pipefail

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: bash examples/make_random_checkpoint.sh OUT_DIR [--seed N] [--force]" >&2
  exit 2
fi
out="$1"
shift

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# This package's own CLI (the script ships beside it), never another version found on PATH.
cli=(node "$root/bin/ulysses-actors")

mkdir -p "$out"
for cfg in "$here"/models/*/config.json; do
  name="$(basename "$(dirname "$cfg")")"
  "${cli[@]}" init-model "$cfg" --out "$out/$name" "$@"
done
