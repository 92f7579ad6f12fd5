#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh:
#   tools/torchrun_launch.sh SCRIPT NPROC [SCRIPT args...]
# One process per GPU (NCCL); on a machine without GPUs, NPROC CPU processes
# (gloo). Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT; PYTHON picks
# the interpreter.
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
# CPU processes share the cores instead of each using all of them
if [[ -z ${OMP_NUM_THREADS:-} ]]; then
  threads=$(( $(nproc) / NPROC ))
  export OMP_NUM_THREADS=$(( threads > 0 ? threads : 1 ))
fi
exec "${PYTHON:-python}" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$SCRIPT" "$@" --launcher pytorch
