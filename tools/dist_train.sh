#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NPROC [train.py args...]
# e.g.   tools/dist_train.sh \
#            configs/dino/benchmarks/mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py \
#            8 --resume
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG NPROC [train.py args...]" >&2
  exit 2
fi
here=$(dirname "$0")
exec bash "$here/torchrun_launch.sh" "$here/train.py" "$2" "$1" "${@:3}"
