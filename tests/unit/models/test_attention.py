"""The batch_dot attention gives the fused gluonnlp op's numbers in float32, and runs in bf16."""
import mxnet as mx
import numpy as np
import pytest
from gluonnlp.model.bert import DotProductSelfAttentionCell

from kobert_gluon import runtime
from kobert_gluon.models import attention
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.heads import build_classifier
from kobert_gluon.models.params import named_parameters

CONFIG = BertConfig(num_layers=2, units=64, hidden_size=128, num_heads=4, max_length=32, vocab_size=100)


def random_inputs(batch=5, length=12, seed=0):
    rng = np.random.RandomState(seed)
    token_ids = mx.nd.array(rng.randint(5, CONFIG.vocab_size, size=(batch, length)), dtype='int32')
    segment_ids = mx.nd.array(rng.randint(0, 2, size=(batch, length)), dtype='int32')
    valid_length = mx.nd.array([length, 1, *rng.randint(2, length, size=batch - 2)], dtype='int32')
    return token_ids, segment_ids, valid_length


def copy_params(source, target):
    inputs = random_inputs(batch=2, length=4)
    source(*inputs), target(*inputs)  # deferred shapes known
    for a, b in zip(source.collect_params().values(), target.collect_params().values()):
        b.set_data(a.data())


def pair(seed=0):
    """The same random classifier twice (the second one swapped), parameters shared."""
    mx.random.seed(seed)
    fused = build_classifier(CONFIG, num_classes=3, dropout=0.0)
    swapped = build_classifier(CONFIG, num_classes=3, dropout=0.0)
    copy_params(fused, swapped)
    assert attention.use_batch_dot_attention(swapped) == CONFIG.num_layers
    return fused, swapped


@pytest.mark.parametrize('hybridize', [False, True])
def test_cell_matches_the_fused_op_in_float32(hybridize):
    rng = np.random.RandomState(1)
    cell = DotProductSelfAttentionCell(units=48, num_heads=3)
    cell.initialize(mx.init.Normal(0.5))
    qkv = mx.nd.array(rng.normal(size=(10, 4, 48)))  # (length, batch, units)
    valid = mx.nd.array(np.minimum(np.arange(10)[None, :] * 0 + [[10], [3], [1], [7]], 10), dtype='int32')
    if hybridize:
        cell.hybridize(static_alloc=True)
    fused_context, fused_weights = (x.asnumpy() for x in cell(qkv, valid))
    attention.use_batch_dot_attention(cell)
    assert type(cell) is attention.BatchDotSelfAttentionCell
    context, weights = (x.asnumpy() for x in cell(qkv, valid))
    assert context.shape == fused_context.shape == (10, 4, 48)
    np.testing.assert_allclose(context, fused_context, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights, fused_weights, rtol=1e-5, atol=1e-6)
    assert np.all(weights[2, :, :, 1:] == 0)  # the padding mask: one valid token


@pytest.mark.parametrize('hybridize', [False, True])
def test_classifier_logits_match_with_padding(hybridize):
    fused, swapped = pair()
    if hybridize:
        fused.hybridize(static_alloc=True)
        swapped.hybridize(static_alloc=True)
    inputs = random_inputs()
    np.testing.assert_allclose(swapped(*inputs).asnumpy(), fused(*inputs).asnumpy(), rtol=1e-5, atol=1e-5)


def test_parameter_names_are_kept(tmp_path):
    fused, swapped = pair()
    names = list(named_parameters(fused))
    assert 'bert.encoder.transformer_cells.0.attention_cell.proj_query.weight' in names
    assert list(named_parameters(swapped)) == names
    path = str(tmp_path / 'swapped.params')
    swapped.save_parameters(path)
    fused.load_parameters(path)  # same structural names both ways
    assert attention.uses_batch_dot_attention(swapped) and not attention.uses_batch_dot_attention(fused)


def test_swapping_a_hybridized_block_rebuilds_its_graph():
    fused, swapped = pair()
    inputs = random_inputs()
    block = build_classifier(CONFIG, num_classes=3, dropout=0.0)
    copy_params(fused, block)
    block.hybridize(static_alloc=True)
    before = block(*inputs).asnumpy()
    attention.use_batch_dot_attention(block)
    symbol = block._cached_graph  # cleared: rebuilt on the next call
    after = block(*inputs).asnumpy()
    assert not symbol
    ops = {node['op'] for node in __import__('json').loads(block._cached_graph[1].tojson())['nodes']}
    assert 'batch_dot' in ops and '_contrib_interleaved_matmul_selfatt_qk' not in ops
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not runtime.has_bf16(), reason='this CPU has no avx512_bf16/AMX: oneDNN has no bf16 kernels here')
def test_batch_dot_attention_under_bf16_amp():
    """The swapped model converts and runs under bf16 AMP, close to float32. Its matmuls stay
    float32: MXNet 1.9.1's CPU batch_dot is float32 only ("dot only supports float32/float64 for
    CPU"), and AMP's bf16 lists keep Reshape/transpose in float32 (benchmarks/README.md)."""
    from kobert_gluon.models import precision
    _, swapped = pair()
    swapped.hybridize(static_alloc=True)
    inputs = random_inputs()
    reference = swapped(*inputs).asnumpy()
    converted = precision.for_inference(swapped, 'bfloat16', mx.cpu())
    symbol = converted(*(mx.sym.var(f'data{i}') for i in range(3)))
    internals = symbol.get_internals()
    dtypes = dict(zip(internals.list_outputs(), internals.infer_type(data0='int32', data1='int32', data2='int32')[1]))
    batch_dots = {name: dtype for name, dtype in dtypes.items() if 'batch_dot' in name}
    assert len(batch_dots) == 2 * CONFIG.num_layers and all(dtype == np.float32 for dtype in batch_dots.values())
    assert any('amp_cast' in name for name in dtypes)  # the dense layers do run in bf16
    np.testing.assert_allclose(converted(*inputs).astype('float32').asnumpy(), reference, atol=0.05)
