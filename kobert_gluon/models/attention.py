"""Self-attention from ``batch_dot``, in place of gluonnlp's fused ``interleaved_matmul`` ops.

gluonnlp's ``DotProductSelfAttentionCell`` computes scores and context with
``_contrib_interleaved_matmul_selfatt_qk`` / ``_valatt``, whose CPU kernels are float32 only
("Only FP32 is supported on CPU"): under bf16 AMP every attention block is cast up and back.
:func:`use_batch_dot_attention` swaps the computation of every such cell in a built network for
the same arithmetic written with ``split``/``transpose``/``batch_dot``. The cell keeps its
parameters, names and output layout, so params files load as before, and float32 results agree
with the fused op to float32 rounding (tests/unit/models/test_attention.py).

Measured (benchmarks/README.md, "AVX-512 bf16/VNNI"): it does not give bf16 attention on MXNet
1.9.1, whose CPU ``batch_dot`` is float32 only (no oneDNN matmul; "dot only supports
float32/float64 for CPU"), and whose oneDNN fused ``_sg_mkldnn_selfatt_*`` ops return NaN on
bf16 inputs. So it is opt-in (``kobert_gluon.use_batch_dot_attention``), not the default: the
way in for a MXNet build whose ``batch_dot`` has bf16 kernels.
"""
import math

import mxnet as mx

from gluonnlp.model.bert import DotProductSelfAttentionCell
from .. import arguments as _arg


class BatchDotSelfAttentionCell(DotProductSelfAttentionCell):
    """gluonnlp's cell, same parameters, with the two fused matmuls written as ``batch_dot``."""

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, qkv, valid_len, query_bias, key_bias, value_bias,
                       query_weight, key_weight, value_weight):
        heads = self._num_heads
        # Three projections as one FullyConnected (qkv: (length, batch, C_in)).
        weight = F.concat(query_weight, key_weight, value_weight, dim=0)
        bias = F.concat(query_bias, key_bias, value_bias, dim=0)
        projected = F.FullyConnected(data=qkv, weight=weight, bias=bias, num_hidden=self.units * 3,
                                     no_bias=False, flatten=False)
        # (length, batch, 3 * units) -> 3 x (batch * heads, length, head_dim)
        projected = projected.reshape(shape=(0, 0, 3, heads, -1))
        projected = F.transpose(projected, axes=(2, 1, 3, 0, 4)).reshape(shape=(3, -3, 0, 0))
        query, key, value = F.split(projected, num_outputs=3, axis=0, squeeze_axis=True)
        scale = 1.0 / math.sqrt(self.units // heads)
        scores = F.batch_dot(query * scale, key, transpose_b=True)
        if valid_len is not None:
            valid_len = F.broadcast_axis(F.expand_dims(valid_len, axis=1), axis=1, size=heads)
            valid_len = valid_len.reshape(shape=(-1, 0), reverse=True)
            weights = F.softmax(scores, length=valid_len, use_length=True, axis=-1)
        else:
            weights = F.softmax(scores, axis=-1)
        weights = self.dropout_layer(weights)
        context = F.batch_dot(weights, value)  # (batch * heads, length, head_dim)
        context = F.transpose(context.reshape(shape=(-4, -1, heads, 0, 0)), axes=(2, 0, 1, 3))
        context = context.reshape(shape=(0, 0, -3))  # (length, batch, units)
        return context, weights.reshape(shape=(-1, heads, 0, 0), reverse=True)


def attention_cells(block):
    """Every gluonnlp self-attention cell inside ``block`` (any depth)."""
    found = [block] if isinstance(block, DotProductSelfAttentionCell) else []
    for child in block._children.values():  # pylint: disable=protected-access
        found.extend(attention_cells(child))
    return found


def use_batch_dot_attention(block):
    """Compute every attention cell of ``block`` with ``batch_dot``; returns how many were swapped.

    In place, parameters untouched. A hybridized block rebuilds its graph on the next call.
    """
    _arg.instance('use_batch_dot_attention', 'block', block, mx.gluon.Block, 'a Gluon block (a BERT or classifier)')
    cells = [cell for cell in attention_cells(block) if type(cell) is DotProductSelfAttentionCell]
    for cell in cells:
        cell.__class__ = BatchDotSelfAttentionCell
    if cells and getattr(block, '_active', False):
        block._clear_cached_op()  # pylint: disable=protected-access
    return len(cells)


def uses_batch_dot_attention(block):
    cells = attention_cells(block)
    return bool(cells) and all(isinstance(cell, BatchDotSelfAttentionCell) for cell in cells)
