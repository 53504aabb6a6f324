#!/usr/bin/env bash
# Install the stack mmdet-ghm is tested on, then this package in editable mode.
#
# Idempotent: every step is skipped when what it installs is already there.
# The mmcv 2.1.0 build with compiled ops (~10 min on 2 cores) runs only when
# `import mmcv.ops` fails and no wheel is cached; the wheel is kept in
# $MMDET_GHM_CACHE (default ~/.cache/mmdet-ghm), outside the clone, so a later
# run on the same machine reuses it.
#
# Each step prints one line; pip's own output (resolver notes, warnings,
# compiler output) goes to $MMDET_GHM_CACHE/install.log, whose last lines are
# shown if a step fails.
#
# This pins the CPU stack used by CI. GPU users install their own torch, then
# `pip install -U openmim && mim install mmcv==2.1.0` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${MMDET_GHM_CACHE:-$HOME/.cache/mmdet-ghm}
WHEELS="$CACHE/wheels"
LOG="$CACHE/install.log"
mkdir -p "$CACHE"

has() { "$PY" -c "$1" >/dev/null 2>&1; }
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }

# step MESSAGE COMMAND...: run COMMAND with its output in $LOG, print one line.
step() {
  local message=$1 start=$SECONDS status=0
  shift
  if [ -z "${LOG_STARTED:-}" ]; then  # a run that installs nothing keeps the last log
    echo "# tools/install.sh, $(date)" >"$LOG"
    echo "[install] pip output goes to $LOG"
    LOG_STARTED=1
  fi
  printf '[install] %s ... ' "$message"
  echo "## $message: $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "failed"
    {
      echo "[install] error: '$message' failed (exit $status). Last lines of $LOG:"
      tail -n 30 "$LOG" | sed 's/^/    /'
      echo "[install] the full output is in $LOG"
    } >&2
    exit "$status"
  fi
  echo "done ($((SECONDS - start)) s)"
}

# mmcv's setup.py imports pkg_resources and needs setuptools<70 to build;
# setuptools is put back to the 77-80 that torch and mmengine want either way.
build_mmcv_wheel() {
  local status=0
  pip_install 'setuptools<70' || return
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel \
    --disable-pip-version-check --no-build-isolation --no-deps \
    mmcv==2.1.0 -w "$WHEELS" || status=$?
  pip_install 'setuptools>=77,<81' || return
  return "$status"
}

if ! has "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')"; then
  step "torch 2.13.0 (CPU build)" pip_install torch==2.13.0
fi

# numpy<2: the numpy that mmdet 3.3.0 / mmcv 2.1.0 were released with (numpy 2.4
# also trains and evaluates with this stack; setup.py does not cap it).
# setuptools 77-80: torch asks for >=77 and mmengine still imports
# pkg_resources (removed in setuptools 81).
if ! has "import numpy, setuptools, pkg_resources, ninja, sys; sys.exit(not (numpy.__version__ < '2' and 77 <= int(setuptools.__version__.split('.')[0]) < 81))"; then
  step "numpy<2, setuptools 77-80, ninja" pip_install 'numpy<2' 'setuptools>=77,<81' ninja wheel
fi

if ! has "import mmengine, sys; sys.exit(mmengine.__version__ != '0.10.7')"; then
  step "mmengine 0.10.7" pip_install 'numpy<2' mmengine==0.10.7
fi

if ! has "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '2.1.0')"; then
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    step "building mmcv 2.1.0 with compiled ops (about 10 minutes on 2 cores)" build_mmcv_wheel
  fi
  step "mmcv 2.1.0 from $WHEELS" \
    pip_install --no-deps --force-reinstall "$(ls "$WHEELS"/mmcv-2.1.0-*.whl | head -n1)"
  has "import mmcv.ops" || { echo "[install] error: mmcv.ops does not import after install" >&2; exit 1; }
fi

if ! has "import mmdet, pycocotools, sys; sys.exit(mmdet.__version__ != '3.3.0')"; then
  step "mmdet 3.3.0, pycocotools" pip_install 'numpy<2' mmdet==3.3.0 pycocotools
fi

if ! has "import pytest, matplotlib, tensorboard"; then
  step "test and plotting tools" pip_install 'numpy<2' pytest matplotlib tensorboard
fi

# mmcv's runtime deps (it was installed with --no-deps).
if ! has "import addict, yapf, cv2, packaging, PIL"; then
  step "mmcv's runtime dependencies" pip_install 'numpy<2' addict yapf opencv-python packaging pillow pyyaml
fi

# Editable install of this clone, with mmdet_ghm/.mim linked to configs/ and tools/.
REPO=$(pwd -P)
if ! (cd / && has "import mmdet_ghm, os, sys; d = os.path.dirname(mmdet_ghm.__file__); sys.exit(os.path.realpath(d) != '$REPO/mmdet_ghm' or not os.path.isdir(os.path.join(d, '.mim', 'configs')))"); then
  step "mmdet-ghm (editable)" pip_install --no-deps --no-build-isolation -e .
fi
echo "[install] ready: $("$PY" -c 'import torch, mmcv, mmdet, mmengine; print("torch", torch.__version__, "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmengine", mmengine.__version__)')"
