#!/usr/bin/env bash
# Shared by slurm_train.sh / slurm_test.sh:
#   tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT args...]
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS,
# PYTHON.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
shift 3
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# SRUN_ARGS is deliberately word-split: it holds several srun options
# shellcheck disable=SC2086
exec srun -p "$PARTITION" \
  --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" \
  --ntasks="${GPUS:-8}" \
  --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="${CPUS_PER_TASK:-5}" \
  --kill-on-bad-exit=1 \
  ${SRUN_ARGS:-} \
  "${PYTHON:-python}" -u "$SCRIPT" "$@" --launcher slurm
