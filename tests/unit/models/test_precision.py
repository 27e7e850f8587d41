"""Bucketing, bf16, INT8 and AMP paths: each runs and stays close to float32."""
import json
import subprocess
import sys
import warnings

import mxnet as mx
import numpy as np
import pytest
from mxnet.contrib import amp

from kobert_gluon import runtime

from kobert_gluon.models import precision
from kobert_gluon.device import cuda_build
from kobert_gluon.text.data import BERTDataset
from kobert_gluon.errors import ConfigError
from kobert_gluon.training.config import TrainConfig
from kobert_gluon.training.splits import make_loader

SENTENCES = ['정말 최고의 영화였어요', '다시는 안 갑니다', '배송이 빠르고 포장도 꼼꼼했어요 추천합니다',
             '음', '직원분이 너무 불친절해서 기분이 상했어요. 음식도 식어서 나왔고요', 'ㅋㅋㅋ 재밌다',
             '가격 대비 별로', '漢字와 English가 섞인 문장 123', '😀😀', '']


def fixed_length_logits(classifier, texts):
    """Reference: every sentence padded to max_len, one at a time, as the notebook did."""
    rows = [[t, 0] for t in texts]
    out = []
    for token_ids, valid_length, segment_ids, _ in BERTDataset(rows, 0, 1, classifier.tokenizer, classifier.max_len, True, False):
        nd = [mx.nd.array(a[None] if a.ndim else a.reshape(1), dtype='int32') for a in (token_ids, segment_ids, valid_length)]
        out.append(classifier.model(*nd).asnumpy()[0])
    return np.stack(out)


def test_length_sorted_batches_equal_fixed_padding(demo_classifier):
    texts = SENTENCES * 3
    np.testing.assert_allclose(demo_classifier.logits(texts, batch_size=4),
                               fixed_length_logits(demo_classifier, texts), rtol=1e-5, atol=1e-5)


def test_bucketed_loader_gives_the_same_logits_per_sentence(demo_classifier):
    rows = [[t, i % 2] for i, t in enumerate(SENTENCES * 4)]
    per_sentence = {}
    for bucketing in (False, True):
        dataset = BERTDataset(rows, 0, 1, demo_classifier.tokenizer, demo_classifier.max_len, not bucketing, False)
        config = TrainConfig(batch_size=8, bucketing=bucketing)
        logits = []
        for token_ids, valid_length, segment_ids, _ in make_loader(dataset, config, shuffle=False, pad_id=1):
            if bucketing:
                assert token_ids.shape[1] % 8 == 0 and token_ids.shape[1] <= max(64, int(valid_length.max().asscalar()) + 7)
            inputs = [a.as_in_context(mx.cpu()) for a in (token_ids, segment_ids, valid_length)]
            logits.append((token_ids.asnumpy(), valid_length.asnumpy(), demo_classifier.model(*inputs).asnumpy()))
        # Bucketed batches come in another order: key each row by its unpadded token ids.
        per_sentence[bucketing] = {tuple(ids[:n]): out for ids_b, n_b, out_b in logits
                                   for ids, n, out in zip(ids_b, n_b, out_b)}
    assert per_sentence[True].keys() == per_sentence[False].keys()
    for key, out in per_sentence[False].items():
        np.testing.assert_allclose(per_sentence[True][key], out, rtol=1e-5, atol=1e-5)


def test_bucketing_uses_fewer_padded_tokens(demo_classifier):
    rows = [[t, 0] for t in SENTENCES * 10]
    dataset = BERTDataset(rows, 0, 1, demo_classifier.tokenizer, 64, False, False)
    padded = sum(b[0].size for b in make_loader(dataset, TrainConfig(batch_size=16, bucketing=True), False, 1))
    assert padded < len(rows) * 64 / 2


def test_int8_logits_track_float32(demo_classifier):
    texts = SENTENCES * 8
    int8 = demo_classifier.with_precision('int8', calibration_texts=texts)
    assert int8.dtype == 'int8' and demo_classifier.dtype == 'float32'
    reference = demo_classifier.predict_proba(texts)
    quantized = int8.predict_proba(texts)
    assert np.abs(quantized - reference).max() < 0.1
    assert (quantized.argmax(1) == reference.argmax(1)).mean() >= 0.9
    np.testing.assert_array_equal(demo_classifier.predict_proba(texts), reference)  # original untouched


def test_int8_needs_calibration_sentences(demo_classifier):
    with pytest.raises(ValueError, match='calibration'):
        demo_classifier.with_precision('int8')


def test_bf16_falls_back_to_float32_with_one_line_without_cpu_support(monkeypatch, caplog):
    monkeypatch.setattr(runtime, 'has_bf16', lambda: False)
    with caplog.at_level('WARNING', logger='kobert_gluon'), warnings.catch_warnings():
        warnings.simplefilter('error')  # logging is set up (pytest's handlers): a log line, no warning
        assert precision.resolve('bfloat16', mx.cpu()) == 'float32'
    assert [r.getMessage() for r in caplog.records if 'float32' in r.getMessage()] == [
        'dtype=bfloat16: this CPU has no avx512_bf16/AMX support, so oneDNN cannot run bf16 kernels; '
        'falling back to float32']
    monkeypatch.setattr(precision.logging.getLogger(), 'handlers', [])
    with pytest.warns(RuntimeWarning, match='no avx512_bf16/AMX.*float32'):  # no logging set up: a warning
        assert precision.resolve('bfloat16', mx.cpu()) == 'float32'
    monkeypatch.setattr(runtime, 'has_bf16', lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert precision.resolve('bfloat16', mx.cpu()) == 'bfloat16'


@pytest.mark.parametrize('dtype, ctx, training, match', [
    ('float16', mx.cpu(), False, 'needs a GPU'),
    ('bfloat16', mx.gpu(0), False, 'use dtype=float16'),
    ('int8', mx.cpu(), True, 'inference only'),
    ('int4', mx.cpu(), False, "dtype='int4'"),
])
def test_impossible_precisions_are_named(dtype, ctx, training, match):
    with pytest.raises(ValueError, match=match):
        precision.resolve(dtype, ctx, training)


def test_bf16_graph_type_checks_with_gluonnlp_attention(demo_classifier):
    """MXNet's bf16 lists miss gluonnlp's fused attention; without our registration the
    converted graph fails type inference (one bf16 and one fp32 input)."""
    converted = precision.for_inference(demo_classifier.model, 'bfloat16', mx.cpu())
    symbol = converted(mx.sym.var('data0'), mx.sym.var('data1'), mx.sym.var('data2'))
    _, out_types, _ = symbol.infer_type(data0='int32', data1='int32', data2='int32')
    assert out_types == [np.float32]
    casts = [n for n in symbol.get_internals().list_outputs() if 'amp_cast' in n]
    assert casts, 'no bf16 casts were inserted'


@pytest.mark.skipif(not runtime.has_bf16(), reason='this CPU has no avx512_bf16/AMX: oneDNN has no bf16 kernels here')
def test_bf16_logits_close_to_float32(demo_classifier):
    bf16 = demo_classifier.with_precision('bfloat16')
    reference = demo_classifier.predict_proba(SENTENCES)
    assert np.abs(bf16.predict_proba(SENTENCES) - reference).max() < 0.05


@pytest.mark.skipif(not runtime.has_bf16(), reason='this CPU has no avx512_bf16/AMX: oneDNN has no bf16 kernels here')
def test_bf16_training_learns_the_demo(tmp_path):
    # A process of its own: amp.init rewrites operators for the whole process. Before the fix,
    # MXNet's bf16 AMP left the 'add' gradients at zero and the demo stayed at 0.50.
    run_dir = tmp_path / 'bf16'
    subprocess.run([sys.executable, '-m', 'kobert_gluon.cli', 'train', '--dtype', 'bfloat16', '--num_epochs', '3',
                    '--output_dir', str(run_dir)], check=True, capture_output=True)
    report = json.loads((run_dir / 'test_report.json').read_text(encoding='utf-8'))
    assert report['accuracy'] > 0.65, report['accuracy']


def test_bf16_with_accumulation_is_refused_up_front():
    with pytest.raises(ConfigError, match='accumulate > 1 is not available with dtype=bfloat16'):
        TrainConfig(dtype='bfloat16', accumulate=2).validate()


def test_training_in_bf16_without_support_trains_in_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, 'has_bf16', lambda: False)
    monkeypatch.setattr(precision.logging.getLogger(), 'handlers', [])  # as in a script without logging
    with pytest.warns(RuntimeWarning, match='falling back to float32'):
        from kobert_gluon.training.finetune import train
        classifier = train(TrainConfig.demo(num_epochs=1, dtype='bfloat16', output_dir=str(tmp_path / 'bf16')))
    assert all(np.dtype(p.dtype) == np.float32 for p in classifier.model.collect_params().values())


@pytest.mark.skipif(not (cuda_build() and mx.context.num_gpus() > 0), reason='AMP float16 needs a GPU and a CUDA build of mxnet')
def test_amp_float16_on_gpu(tmp_path):
    from kobert_gluon.training.finetune import train
    classifier = train(TrainConfig.demo(num_epochs=2, dtype='float16', ctx='gpu', output_dir=str(tmp_path / 'fp16')))
    assert classifier.test_report['accuracy'] > 0.6
    assert amp.amp._amp_initialized


def test_bf16_conversion_never_runs_float32_and_stores_bf16_weights():
    """The graph comes from a symbolic pass (no float32 activations), parameters still waiting
    for their shapes get them, and the dense weights are stored once, in bf16."""
    import kobert_gluon as kg
    from kobert_gluon.models.config import BertConfig
    model = kg.build_classifier(BertConfig(num_layers=1, units=32, hidden_size=64, num_heads=2, max_length=16,
                                           vocab_size=50), num_classes=2)
    model.hybridize(static_alloc=True)
    assert not model._cached_graph
    converted = kg.for_inference(model, 'bfloat16', mx.cpu())
    dtypes = {name: np.dtype(p.dtype) for name, p in converted.collect_params().items()}
    # FullyConnected weights that feed the layer directly; gluonnlp reshapes and concatenates the
    # query/key/value weights first (Reshape is on MXNet's float32 list), so those stay float32.
    dense = [name for name in dtypes if name.endswith(('proj_weight', 'ffn_1_weight', 'ffn_2_weight'))]
    assert len(dense) == 3 and all(dtypes[name] != np.float32 for name in dense), dtypes


def test_int8_settings_are_checked(demo_classifier):
    calibration = [mx.nd.ones((2, 8), dtype='int32'), mx.nd.zeros((2, 8), dtype='int32'),
                   mx.nd.array([8, 3], dtype='int32')]
    with pytest.raises(ConfigError, match="calib_mode='minmax'"):
        precision.for_inference(demo_classifier.model, 'int8', mx.cpu(), calibration, calib_mode='minmax')


def test_cpu_facts_are_public():
    import kobert_gluon as kg
    assert kg.has_vnni() == bool(kg.cpu_flags() & {'avx512_vnni', 'avx_vnni', 'amx_int8'})
    assert kg.PRECISIONS == precision.PRECISIONS and kg.resolve_precision is precision.resolve
