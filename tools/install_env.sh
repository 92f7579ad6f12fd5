#!/usr/bin/env bash
# Create or refresh the project virtualenv with the pinned OpenMMLab stack.
#
#   bash tools/install_env.sh            # what `make demo` / `make test` run
#
# Environment switches:
#   VENV=path              virtualenv location (default: .venv at the repo root)
#   PYTHON=python3.11      interpreter that creates it (default: python3)
#   BCSSL_SYSTEM_TORCH=1   keep the torch/torchvision you already have: either
#                          VENV names an existing environment that has them
#                          (it is used as it is), or a new VENV is created
#                          with --system-site-packages from a PYTHON that has
#                          them; torch is not installed and every other
#                          package is constrained to that torch
#   BCSSL_CACHE_DIR=dir    where built mmcv wheels are kept
#                          (default: ~/.cache/bcssl_mm)
#   BCSSL_MMCV_CUDA=0|1    force mmcv's CPU-only / CUDA ops (default: CUDA ops
#                          when nvcc is on PATH and torch sees a GPU)
#
# mmcv 2.1.0 is published as source only; its ops take ~18 min to build on 2
# cores. The wheel is built once per machine and cached under
# $BCSSL_CACHE_DIR/wheels/<key>/, keyed by mmcv, torch, python and CPU/CUDA.
# A second run with unchanged requirements returns in about a second.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
SYSTEM_TORCH=${BCSSL_SYSTEM_TORCH:-0}
CACHE_DIR=${BCSSL_CACHE_DIR:-$HOME/.cache/bcssl_mm}
MMCV_VERSION=2.1.0

log() { printf '[install_env] %s\n' "$*"; }

# Everything that changes what gets installed goes into the stamp.
stamp_value=$(cat requirements/*.txt setup.py tools/install_env.sh \
  | sha256sum | cut -d' ' -f1)-system_torch=$SYSTEM_TORCH-mmcv_cuda=${BCSSL_MMCV_CUDA:-auto}
stamp_file=$VENV/.bcssl_mm_installed
if [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp_value" \
      && -x $VENV/bin/python ]]; then
  log "$VENV is up to date"
  exit 0
fi

start=$SECONDS
if [[ ! -x $VENV/bin/python ]]; then
  venv_args=()
  [[ $SYSTEM_TORCH == 1 ]] && venv_args+=(--system-site-packages)
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
PY=$VENV/bin/python
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

constraints=$ROOT/requirements/constraints.txt
if [[ $SYSTEM_TORCH == 1 ]]; then
  tv=$("$PY" -c 'import torch, torchvision; print(torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])') || {
    log "BCSSL_SYSTEM_TORCH=1 but $PY cannot import torch and torchvision" \
        "(set VENV to an environment that has them, or PYTHON to an interpreter" \
        "that has them for a new venv)"; exit 1; }
  read -r torch_v vision_v <<<"$tv"
  constraints=$VENV/constraints-system-torch.txt
  grep -v -E '^(torch|torchvision)=' requirements/constraints.txt > "$constraints"
  printf 'torch==%s\ntorchvision==%s\n' "$torch_v" "$vision_v" >> "$constraints"
  log "keeping torch $torch_v / torchvision $vision_v from $PYTHON"
fi

log "build tools"
pip install -q -c "$constraints" "setuptools>=77,<81" wheel ninja
if [[ $SYSTEM_TORCH != 1 ]]; then
  log "torch and torchvision"
  pip install -q -c "$constraints" torch torchvision
fi

# --- mmcv with its ops, from the cache or built once -------------------------
read -r torch_full cuda_ok py_tag <<<"$("$PY" -c '
import sys, torch
print(torch.__version__, int(torch.cuda.is_available()),
      f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
case ${BCSSL_MMCV_CUDA:-auto} in
  1) with_cuda=1 ;;
  0) with_cuda=0 ;;
  *) with_cuda=0; [[ $cuda_ok == 1 ]] && command -v nvcc >/dev/null && with_cuda=1 ;;
esac
if [[ $with_cuda == 1 ]]; then
  ops=cu$("$PY" -c 'import torch; print(torch.version.cuda.replace(".", ""))')
else
  ops=cpu
fi
key=mmcv-$MMCV_VERSION-torch${torch_full%%+*}-$ops-$py_tag
wheel_dir=$CACHE_DIR/wheels/$key
wheel=$(ls "$wheel_dir"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z $wheel ]]; then
  log "building mmcv $MMCV_VERSION with $ops ops against torch $torch_full (about 18 min on 2 cores, once per machine)"
  build_dir=$(mktemp -d "${TMPDIR:-/tmp}/bcssl_mmcv.XXXXXX")
  trap 'rm -rf "$build_dir"' EXIT
  pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build_dir/src"
  build_start=$SECONDS
  MMCV_WITH_OPS=1 FORCE_CUDA=$with_cuda MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    pip wheel -q --no-build-isolation --no-deps -w "$build_dir/out" \
    "$build_dir"/src/mmcv-$MMCV_VERSION.tar.gz
  mkdir -p "$wheel_dir"
  built=$(ls "$build_dir"/out/mmcv-*.whl)
  # copy then rename, so an interrupted build never leaves a partial wheel
  cp "$built" "$wheel_dir/.partial.whl"
  mv "$wheel_dir/.partial.whl" "$wheel_dir/$(basename "$built")"
  wheel=$wheel_dir/$(basename "$built")
  log "mmcv built in $((SECONDS - build_start)) s, cached at $wheel"
else
  log "mmcv from cache: $wheel"
fi
pip install -q --no-deps --force-reinstall "$wheel"

log "OpenMMLab stack, timm, pycocotools, pytest, linters"
pip install -q -c "$constraints" -r requirements/runtime.txt -r requirements/tests.txt \
  -r requirements/lint.txt
log "bcssl_mm (editable)"
pip install -q --no-deps --no-build-isolation -e .

"$PY" - <<'PY'
import mmcv, mmdet, mmengine, mmpretrain, torch, torchvision
from mmcv.ops import RoIAlign  # fails if mmcv was built without its ops
import bcssl_mm
print(f'[install_env] torch {torch.__version__}, torchvision '
      f'{torchvision.__version__}, mmengine {mmengine.__version__}, mmcv '
      f'{mmcv.__version__}, mmdet {mmdet.__version__}, mmpretrain '
      f'{mmpretrain.__version__}, bcssl_mm {bcssl_mm.__version__}')
PY
echo "$stamp_value" > "$stamp_file"
log "done in $((SECONDS - start)) s"
# timm's own model tests (not vendored), for test_timm_upstream_suite.py
"$PY" tools/fetch_timm_tests.py --cache-dir "$CACHE_DIR" \
  || log "could not fetch timm's tests; test_timm_upstream_suite.py will skip (and fail under .ci/run)"
