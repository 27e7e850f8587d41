#!/usr/bin/env bash
# Creates ./.venv (or $VENV) with kobert_gluon and its pinned dependencies on Python 3.11.
#   bash scripts/install.sh            # library + CLI
#   bash scripts/install.sh dev        # + test tools
#   bash scripts/install.sh dev bench  # + PyTorch/transformers for benchmarks/
#   bash scripts/install.sh convert    # + transformers/safetensors: kobert-gluon convert
#   bash scripts/install.sh serve      # + starlette/uvicorn for `kobert-gluon serve`
#   bash scripts/install.sh horovod    # + Horovod (Gloo, MXNet) for --distributed horovod
# gluonnlp 0.10.0's sdist carries a C file made by an old Cython that fails on Python 3.11
# ("longintrepr.h"); we drop it so Cython regenerates it while building.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
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
$PIP install -q -e ".${extras:+[$extras]}"
"$VENV/bin/python" -c 'import kobert_gluon, mxnet, gluonnlp; print("kobert_gluon", kobert_gluon.__version__, "mxnet", mxnet.__version__, "gluonnlp", gluonnlp.__version__)'
