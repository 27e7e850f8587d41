"""Lower precision for BERTClassifier: bf16 on CPU and fp16 on GPU through MXNet AMP, INT8 on CPU.

What is safe where:
- ``bfloat16`` needs oneDNN bf16 kernels (avx512_bf16 or AMX); elsewhere oneDNN cannot build
  a bf16 FullyConnected, so we fall back to float32 with a warning. ``runtime`` asks Linux for
  the AMX permission and sets ``DNNL_MAX_CPU_ISA`` at import, before mxnet loads.
- ``float16`` is GPU-only (AMP with dynamic loss scaling).
- ``int8`` is CPU inference only, calibrated on sample batches (oneDNN quantization). It runs
  everywhere oneDNN has int8 kernels; avx512_vnni/AMX make it fast (``runtime.has_vnni``).

Inference conversion builds the float32 graph symbolically (it never runs the float32 model)
and stores the bf16 weights once (``cast_optional_params``), so after the caller drops the
float32 model nothing of it stays (benchmarks/README.md: peak RSS). What was measured for each
lever, kept or not, is in benchmarks/README.md ("AVX-512 bf16/VNNI").
"""
import gc
import logging
import warnings

import mxnet as mx
from mxnet.contrib import amp
from mxnet.contrib import quantization
from mxnet.contrib.amp.lists import symbol_bf16

from .. import arguments as _arg
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
CALIBRATION_MODES = ('naive', 'entropy')
# int8 calibration runs the float32 graph on batches of this many sentences (every layer's output
# goes to the collector). Peak RSS at KoBERT size was the same with 2 and 8 (the float32
# executor's oneDNN weights dominate, ~1 GB); 8 keeps calibration fast.
CALIBRATION_BATCH = 8
INT8_SETTINGS = {'calib_mode': 'naive', 'quantize_granularity': 'tensor-wise'}


def _is_gpu(ctx):
    return ctx.device_type == 'gpu'


def resolve(precision, ctx, training=False):
    """The precision that will really run on ``ctx``: ``precision`` or a safe fallback."""
    _arg.text('resolve_precision', 'precision', precision)
    _arg.instance('resolve_precision', 'ctx', ctx, (mx.Context, list, tuple), 'an mxnet context (mx.cpu(), mx.gpu(0))')
    if precision not in PRECISIONS:
        raise ConfigError(f'dtype={precision!r}: expected one of {PRECISIONS}')
    if precision == 'bfloat16' and _is_gpu(ctx):
        raise ConfigError('dtype=bfloat16 is the CPU path; on a GPU use dtype=float16')
    if precision == 'float16' and not _is_gpu(ctx):
        raise ConfigError('dtype=float16 needs a GPU (--ctx gpu); on a CPU use dtype=bfloat16')
    if precision == 'int8' and (training or _is_gpu(ctx)):
        raise ConfigError('dtype=int8 is for CPU inference only (predict/evaluate/export), not training')
    if precision == 'bfloat16' and not runtime.has_bf16():
        fall_back('dtype=bfloat16: this CPU has no avx512_bf16/AMX support, so oneDNN cannot '
                  'run bf16 kernels; falling back to float32')
        return 'float32'
    return precision


def fall_back(message):
    """Say it once: a log record where logging is set up (the CLI), else a RuntimeWarning."""
    if logging.getLogger().handlers:
        logger.warning(message)
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=4)


resolve_precision = resolve  # the public name (kobert_gluon.resolve_precision)


def _register_attention_ops():
    for op in ATTENTION_OPS:
        if op not in symbol_bf16.FP32_FUNCS:
            symbol_bf16.FP32_FUNCS.append(op)


def init_training(precision):
    """Turn on AMP for training; call before the model is built. Process-wide, like amp.init."""
    _arg.text('init_training', 'precision', precision)
    if precision in ('bfloat16', 'float16'):
        _register_attention_ops()
        amp.init(target_dtype=precision)


def for_inference(model, precision, ctx, calibration=None, **int8_settings):
    """A block computing ``model`` in ``precision``; ``model`` itself is left as it was.

    ``calibration``: (token_ids, segment_ids, valid_length) NDArrays of real sentences, all
    padded to one width, needed for ``int8`` (a few hundred sentences is enough).
    ``int8_settings`` override :data:`INT8_SETTINGS` (``calib_mode``: naive or entropy;
    ``quantize_granularity``: tensor-wise or channel-wise).
    The returned block holds its own parameters: drop ``model`` to free the float32 ones.
    """
    _arg.instance('for_inference', 'model', model, mx.gluon.Block, 'a Gluon block (the classifier)')
    _arg.text('for_inference', 'precision', precision)
    _arg.instance('for_inference', 'ctx', ctx, (mx.Context, list, tuple), 'an mxnet context (mx.cpu(), mx.gpu(0))')
    if precision == 'float32':
        return model
    if precision in ('bfloat16', 'float16'):
        _register_attention_ops()
        symbolic_graph(model)
        with warnings.catch_warnings():  # SymbolBlock cannot tell the int32 inputs' type: harmless
            warnings.filterwarnings('ignore', 'Cannot decide type', UserWarning)
            converted = amp.convert_hybrid_block(model, target_dtype=precision, ctx=ctx, cast_optional_params=True)
        converted.hybridize(static_alloc=True)
        gc.collect()  # conversion's float32 temporaries
        return converted
    if calibration is None:
        raise ConfigError('dtype=int8 needs calibration sentences')
    if not runtime.has_vnni():
        logger.info('dtype=int8: this CPU has no avx512_vnni/AMX int8 instructions; oneDNN uses its '
                    'slower AVX2 int8 kernels')
    return _quantize(model, calibration, ctx, **{**INT8_SETTINGS, **int8_settings})


def symbolic_graph(model, inputs=3):
    """Give a hybridized ``model`` the cached graph AMP converts, without running it in float32.

    Running it first (what AMP asks for) allocates every float32 activation once more than the
    converted model needs: +0.8 GB at KoBERT size, batch 32 x 64. Parameters still waiting for
    their shapes get them from the graph. Uses MXNet 1.9.1's HybridBlock internals, as AMP does.
    """
    if model._cached_graph:  # pylint: disable=protected-access
        return model._cached_graph  # pylint: disable=protected-access
    dummy = [mx.nd.zeros((1, 2), dtype='int32') for _ in range(inputs - 1)] + [mx.nd.ones((1,), dtype='int32')]
    params = list(model.collect_params().values())
    if any(p._deferred_init for p in params):  # pylint: disable=protected-access
        model.infer_shape(*dummy)
        for param in params:
            if param._deferred_init:  # pylint: disable=protected-access
                param._finish_deferred_init()  # pylint: disable=protected-access
    return model._get_graph(*dummy)  # pylint: disable=protected-access


def _quantize(model, calibration, ctx, calib_mode, quantize_granularity):
    """oneDNN int8, as ``quantization.quantize_net_v2`` does it, with less memory at its peak.

    quantize_net_v2 runs the float32 model once, exports and reloads it (a copy of every
    weight) and calibrates in a Module (another copy): 3.2 GB peak RSS at KoBERT size. Here the
    graph is built symbolically and calibration binds the model's own weight arrays.
    """
    if calib_mode not in CALIBRATION_MODES:
        raise ConfigError(f'calib_mode={calib_mode!r}: expected one of {CALIBRATION_MODES}')
    inputs, graph = symbolic_graph(model, len(calibration))
    weights = {param.name: param.data(ctx) for param in model.collect_params().values()}
    graph = graph.get_backend_symbol('MKLDNN_QUANTIZE')
    quantized, _, _, collector = quantization.quantize_graph(
        sym=graph, arg_params={}, aux_params={}, ctx=ctx, excluded_op_names=FUSED_ATTENTION_OPS,
        calib_mode=calib_mode, quantized_dtype='int8', quantize_mode='full',
        quantize_granularity=quantize_granularity, logger=logger)
    _collect_ranges(graph, weights, [i.name for i in inputs], calibration, collector, ctx)
    quantized, quantized_weights, _ = quantization.calib_graph(
        qsym=quantized, arg_params=weights, aux_params={}, collector=collector, calib_mode=calib_mode,
        quantized_dtype='int8', logger=logger)
    quantized = quantized.get_backend_symbol('MKLDNN_QUANTIZE')
    block = mx.gluon.SymbolBlock(quantized, [mx.sym.var(i.name) for i in inputs])
    block.collect_params().load_dict({f'arg:{name}': value for name, value in quantized_weights.items()},
                                     ctx=ctx, cast_dtype=True, dtype_source='saved')
    del weights, quantized_weights
    block.hybridize(static_alloc=True)
    gc.collect()
    return block


def _collect_ranges(graph, weights, input_names, calibration, collector, ctx):
    """Run the float32 ``graph`` on ``calibration`` in batches, reporting every output to ``collector``."""
    size = min(CALIBRATION_BATCH, calibration[0].shape[0])
    batch = {name: array[:size].as_in_context(ctx) for name, array in zip(input_names, calibration)}
    executor = graph.bind(ctx, args={**weights, **batch}, grad_req='null')
    executor.set_monitor_callback(collector.collect, monitor_all=True)
    for start in range(0, calibration[0].shape[0] - size + 1, size):
        for name, array in zip(input_names, calibration):
            executor.arg_dict[name][:] = array[start:start + size]
        executor.forward(is_train=False)
    mx.nd.waitall()
