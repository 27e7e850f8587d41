"""Parsing ``--ctx`` and failing early when the requested devices are not there."""
import mxnet as mx
from mxnet.runtime import Features

from .errors import ConfigError, DeviceError

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
        raise ConfigError(f"--ctx {spec!r}: expected 'auto', 'cpu', 'gpu' or 'gpu:0,1'")
    try:
        device_ids = [int(i) for i in ids.split(',')] if ids else [0]
    except ValueError:
        raise ConfigError(f"--ctx {spec!r}: GPU ids must be integers, e.g. 'gpu:0,1'") from None
    if not cuda_build():
        raise DeviceError(f'--ctx {spec}: this mxnet ({mx.__version__}) is a CPU-only build; {CUDA_HINT}')
    available = mx.context.num_gpus()
    absent = [i for i in device_ids if i >= available]
    if absent:
        raise DeviceError(f'--ctx {spec}: GPU {absent[0]} requested but {available} GPU(s) are visible')
    return [mx.gpu(i) for i in device_ids]


def check_ctx(ctx):
    """``ctx`` as given, once it is known to exist here (a GPU on a CPU-only build is not)."""
    if not isinstance(ctx, mx.Context):
        raise ConfigError(f'ctx={ctx!r}: expected an mx.Context such as mx.cpu() or mx.gpu(0)')
    if ctx.device_type == 'gpu':
        if not cuda_build():
            raise DeviceError(f'ctx={ctx}: this mxnet ({mx.__version__}) is a CPU-only build; {CUDA_HINT}')
        if ctx.device_id >= mx.context.num_gpus():
            raise DeviceError(f'ctx={ctx}: {mx.context.num_gpus()} GPU(s) are visible')
    return ctx
