"""Parsing ``--ctx`` and failing early when the requested devices are not there."""
import mxnet as mx
from mxnet.runtime import Features

CUDA_HINT = ('install a CUDA build of mxnet that matches your driver, e.g. '
             '`pip install mxnet-cu112==1.9.1` (CUDA 11.2) in place of `mxnet`')


def cuda_build() -> bool:
    return Features().is_enabled('CUDA')


def parse_ctx(spec='auto'):
    """'auto' | 'cpu' | 'gpu' | 'gpu:0,1' -> list of mx.Context, checked to exist."""
    spec = (spec or 'auto').strip().lower()
    if spec == 'auto':
        return [mx.gpu(0)] if cuda_build() and mx.context.num_gpus() > 0 else [mx.cpu()]
    if spec == 'cpu':
        return [mx.cpu()]
    kind, _, ids = spec.partition(':')
    if kind != 'gpu':
        raise ValueError(f"--ctx {spec!r}: expected 'auto', 'cpu', 'gpu' or 'gpu:0,1'")
    try:
        device_ids = [int(i) for i in ids.split(',')] if ids else [0]
    except ValueError:
        raise ValueError(f"--ctx {spec!r}: GPU ids must be integers, e.g. 'gpu:0,1'") from None
    if not cuda_build():
        raise RuntimeError(f'--ctx {spec}: this mxnet ({mx.__version__}) is a CPU-only build; {CUDA_HINT}')
    available = mx.context.num_gpus()
    absent = [i for i in device_ids if i >= available]
    if absent:
        raise RuntimeError(f'--ctx {spec}: GPU {absent[0]} requested but {available} GPU(s) are visible')
    return [mx.gpu(i) for i in device_ids]
