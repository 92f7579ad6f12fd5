#!/usr/bin/env bash
# Usage: tools/dist_knn_eval.sh CONFIG CHECKPOINT NPROC [knn_eval.py args...]
# Each process extracts its shard of the features (gloo on CPU, NCCL on GPUs);
# process 0 runs the k-NN and writes the result.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [knn_eval.py args...]" >&2
  exit 2
fi
here=$(dirname "$0")
exec bash "$here/torchrun_launch.sh" "$here/benchmarks/knn_eval.py" "$3" \
  "$1" "$2" "${@:4}"
