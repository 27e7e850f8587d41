#!/usr/bin/env bash
# Creates ./.venv (or $VENV) with kobert_gluon and its pinned dependencies on Python 3.11.
#   bash scripts/install.sh            # library + CLI
#   bash scripts/install.sh dev        # + test tools
#   bash scripts/install.sh dev bench  # + PyTorch/transformers for benchmarks/
#   bash scripts/install.sh convert    # + transformers/safetensors: kobert-gluon convert
#   bash scripts/install.sh serve      # + FastAPI/uvicorn for `kobert-gluon serve`
#   bash scripts/install.sh horovod    # + Horovod (Gloo, MXNet) for --distributed horovod
# gluonnlp 0.10.0's sdist carries a C file made by an old Cython that fails on Python 3.11
# ("longintrepr.h"); we drop it so Cython regenerates it while building.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Checked first, one line each: numpy 1.23.5 (which mxnet 1.9.1 needs) has wheels for Python 3.8-3.11 only,
# and gluonnlp 0.10.0 is compiled here (a C compiler and the Python headers).
command -v "$PYTHON" >/dev/null || { echo "install.sh: $PYTHON not found; set PYTHON=python3.11" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 11))' || {
  echo "install.sh: $("$PYTHON" -V 2>&1 || echo "$PYTHON") is not supported: mxnet 1.9.1 needs numpy 1.23.5, which has wheels for" \
       "Python 3.8-3.11 only; install Python 3.11 and run PYTHON=python3.11 bash scripts/install.sh" >&2; exit 1; }
if ! "$VENV/bin/python" -c 'import gluonnlp' 2>/dev/null; then
  command -v "${CC:-cc}" >/dev/null || command -v gcc >/dev/null || {
    echo "install.sh: no C compiler: gluonnlp 0.10.0 is built from source (apt-get install gcc)" >&2; exit 1; }
  "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || {
    echo "install.sh: no Python headers (Python.h): gluonnlp 0.10.0 is built from source" \
         "(apt-get install python3-dev, or a Python built with its headers)" >&2; exit 1; }
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip 'setuptools<81' wheel 'Cython<3'
$PIP install -q 'numpy==1.23.5' 'mxnet==1.9.1'
if ! "$VENV/bin/python" -c 'import gluonnlp' 2>/dev/null; then
  build=$(mktemp -d)
  $PIP download -q --no-deps --no-binary :all: 'gluonnlp==0.10.0' -d "$build"
  tar -xzf "$build"/gluonnlp-0.10.0.tar.gz -C "$build"
  rm -f "$build"/gluonnlp-0.10.0/src/gluonnlp/data/fast_bert_tokenizer.c
  $PIP install -q --no-build-isolation "$build"/gluonnlp-0.10.0
  rm -rf "$build"
fi
if [[ " $* " == *" horovod "* ]] && ! "$VENV/bin/python" -c 'import horovod.mxnet' 2>/dev/null; then
  # Horovod compiles its MXNet ops against the mxnet installed above, hence no build
  # isolation. Gloo (no MPI) runs on CPU; for GPUs run it with HOROVOD_GPU_OPERATIONS=NCCL
  # (needs CUDA and NCCL). Needs cmake and g++.
  for tool in cmake g++; do
    command -v "$tool" >/dev/null || { echo "horovod needs $tool to build (apt-get install cmake g++)" >&2; exit 1; }
  done
  HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
    HOROVOD_WITHOUT_PYTORCH=1 $PIP install -q --no-cache-dir --no-build-isolation 'horovod==0.28.1'
fi
extras=""
for extra in "$@"; do extras="${extras:+$extras,}$extra"; done
# numpy pinned in the same call: an extra (onnx, tensorboard) must not upgrade it past what mxnet loads
$PIP install -q -e ".${extras:+[$extras]}" 'numpy==1.23.5'
"$VENV/bin/python" -c 'import kobert_gluon, mxnet, gluonnlp; print("kobert_gluon", kobert_gluon.__version__, "mxnet", mxnet.__version__, "gluonnlp", gluonnlp.__version__)'
