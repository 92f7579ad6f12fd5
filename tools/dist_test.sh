#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 CONFIG CHECKPOINT NPROC [test.py args...]" >&2
  exit 2
fi
here=$(dirname "$0")
exec bash "$here/torchrun_launch.sh" "$here/test.py" "$3" "$1" "$2" "${@:4}"
