"""Lower precision for BERTClassifier: bf16 on CPU and fp16 on GPU through MXNet AMP, INT8 on CPU.

What is safe where:
- ``bfloat16`` needs oneDNN bf16 kernels (avx512_bf16 or AMX); elsewhere oneDNN cannot build
  a bf16 FullyConnected, so we fall back to float32 with a warning. ``runtime`` asks Linux for
  the AMX permission and sets ``DNNL_MAX_CPU_ISA`` at import, before mxnet loads.
- ``float16`` is GPU-only (AMP with dynamic loss scaling).
- ``int8`` is CPU inference only, calibrated on sample batches (oneDNN quantization).
"""
import logging
import warnings

import mxnet as mx
from mxnet.contrib import amp
from mxnet.contrib import quantization
from mxnet.contrib.amp.lists import symbol_bf16

from .. import runtime
from ..errors import ConfigError

logger = logging.getLogger(__name__)

PRECISIONS = ('float32', 'bfloat16', 'float16', 'int8')
# gluonnlp's fused attention ops are missing from MXNet 1.9.1's bf16 lists; unlisted, AMP feeds
# them one bf16 and one fp32 input and fails. Their CPU kernels are float32 only ("Only FP32 is
# supported on CPU"), so they run in float32 and AMP casts their inputs up.
ATTENTION_OPS = ('_contrib_interleaved_matmul_selfatt_qk', '_contrib_interleaved_matmul_selfatt_valatt')
# After oneDNN graph fusion the same ops are named like this; INT8 keeps them in float32,
# because their quantized forms disagree on int8/uint8 inputs in mxnet 1.9.1.
FUSED_ATTENTION_OPS = ['_sg_mkldnn_selfatt_qk', '_sg_mkldnn_selfatt_valatt']


def _is_gpu(ctx):
    return ctx.device_type == 'gpu'


def resolve(precision, ctx, training=False):
    """The precision that will really run on ``ctx``: ``precision`` or a safe fallback."""
    if precision not in PRECISIONS:
        raise ConfigError(f'dtype={precision!r}: expected one of {PRECISIONS}')
    if precision == 'bfloat16' and _is_gpu(ctx):
        raise ConfigError('dtype=bfloat16 is the CPU path; on a GPU use dtype=float16')
    if precision == 'float16' and not _is_gpu(ctx):
        raise ConfigError('dtype=float16 needs a GPU (--ctx gpu); on a CPU use dtype=bfloat16')
    if precision == 'int8' and (training or _is_gpu(ctx)):
        raise ConfigError('dtype=int8 is for CPU inference only (predict/evaluate/export), not training')
    if precision == 'bfloat16' and not runtime.has_bf16():
        message = ('dtype=bfloat16: this CPU has no avx512_bf16/AMX support, so oneDNN cannot '
                   'run bf16 kernels; falling back to float32')
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        logger.warning(message)
        return 'float32'
    return precision


def _register_attention_ops():
    for op in ATTENTION_OPS:
        if op not in symbol_bf16.FP32_FUNCS:
            symbol_bf16.FP32_FUNCS.append(op)


def init_training(precision):
    """Turn on AMP for training; call before the model is built. Process-wide, like amp.init."""
    if precision in ('bfloat16', 'float16'):
        _register_attention_ops()
        amp.init(target_dtype=precision)


def for_inference(model, precision, ctx, calibration=None):
    """A block computing ``model`` in ``precision``; ``model`` itself is left as it was.

    ``calibration``: (token_ids, segment_ids, valid_length) NDArrays of real sentences, all
    padded to one width, needed for ``int8`` (a few hundred sentences is enough).
    """
    if precision == 'float32':
        return model
    if precision in ('bfloat16', 'float16'):
        _register_attention_ops()
        return amp.convert_hybrid_block(model, target_dtype=precision, ctx=ctx)
    if calibration is None:
        raise ConfigError('dtype=int8 needs calibration sentences')
    return _quantize(model, calibration, ctx)


def _quantize(model, calibration, ctx, batch_size=32):
    loader = mx.gluon.data.DataLoader(mx.gluon.data.ArrayDataset(*calibration), batch_size=batch_size)
    return quantization.quantize_net_v2(
        model, quantized_dtype='int8', quantize_mode='full', exclude_operators=FUSED_ATTENTION_OPS,
        calib_data=loader, calib_mode='naive', num_calib_examples=calibration[0].shape[0],
        ctx=ctx, logger=logger)
