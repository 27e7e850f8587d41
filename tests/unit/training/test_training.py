"""The fine-tuning recipe: schedule, weight decay, clipping, accumulation, resume, errors."""
import dataclasses
import re

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

from kobert_gluon.training import finetune as train_module
from kobert_gluon.device import parse_ctx
from kobert_gluon.errors import DataError
from kobert_gluon.models.heads import build_classifier
from kobert_gluon.training.config import TrainConfig
from kobert_gluon.training.optim import clip_gradients, exclude_from_weight_decay, learning_rate_at
from kobert_gluon.training.finetune import train

from helpers import TINY, assert_same_params, final_params, run_config



def notebook_learning_rate(step_num, num_train_steps, num_warmup_steps, lr):
    """The KoBERT notebook's schedule, written as it was there."""
    if step_num < num_warmup_steps:
        return lr * step_num / num_warmup_steps
    non_warmup_steps = step_num - num_warmup_steps
    offset = non_warmup_steps / (num_train_steps - num_warmup_steps)
    return lr - offset * lr


def test_schedule_matches_notebook_and_clamps_at_zero():
    for step in range(0, 101):
        assert learning_rate_at(step, 100, 10, 5e-5) == pytest.approx(notebook_learning_rate(step, 100, 10, 5e-5))
    assert learning_rate_at(10, 100, 10, 5e-5) == pytest.approx(5e-5)
    assert learning_rate_at(130, 100, 10, 5e-5) == 0.0
    assert learning_rate_at(1, 100, 0, 5e-5) == pytest.approx(5e-5 * 99 / 100)


def test_no_weight_decay_on_layernorm_and_biases():
    model = build_classifier(dataclasses.replace(TINY, vocab_size=50), 3)
    params = model.collect_params()
    excluded = {p.name for p in exclude_from_weight_decay(params)}
    for name, p in params.items():
        is_norm_or_bias = bool(re.search(r'(layernorm|ln)\d*_(gamma|beta)$|_bias$', name))
        assert (name in excluded) == is_norm_or_bias, name
        assert p.wd_mult == (0.0 if is_norm_or_bias else 1.0), name
    assert any('gamma' in n for n in excluded) and any('bias' in n for n in excluded)


def summed_gradients(model, batches):
    """Gradients of the summed loss over ``batches``, accumulated as train() accumulates them."""
    params = list(model.collect_params().values())
    for p in params:
        p.grad_req = 'add'
        p.zero_grad()
    for token_ids, valid_length in batches:
        with mx.autograd.record():
            loss = (model(token_ids, mx.nd.zeros_like(token_ids), valid_length) ** 2).sum() * 1000
        loss.backward()
    return params


@pytest.mark.parametrize('max_grad_norm', [0.5, 1e6])
def test_clipping_limits_the_mean_gradient_also_with_accumulation(max_grad_norm):
    """Our scaling: the sum of group_size gradients is clipped so that the *mean* gradient
    has norm <= max_grad_norm, and 2 accumulated batches of 2 clip exactly like one of 4."""
    model = build_classifier(dataclasses.replace(TINY, vocab_size=50, dropout=0.0), 2, dropout=0.0)
    token_ids = mx.nd.array(np.random.RandomState(0).randint(5, 50, (4, 10)), dtype='int32')
    valid_length = mx.nd.array([10, 7, 5, 3])
    model(token_ids, mx.nd.zeros_like(token_ids), valid_length)  # shapes are inferred on the first call

    params = summed_gradients(model, [(token_ids[:2], valid_length[:2]), (token_ids[2:], valid_length[2:])])
    summed = [p.grad().asnumpy().astype(np.float64) for p in params]
    mean_norm = np.sqrt(sum((g ** 2).sum() for g in summed)) / 4
    reported = clip_gradients(params, max_grad_norm, group_size=4)
    accumulated = [p.grad().asnumpy() for p in params]
    assert reported == pytest.approx(mean_norm, rel=1e-4)
    clipped_mean_norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in accumulated)) / 4
    assert clipped_mean_norm == pytest.approx(min(mean_norm, max_grad_norm), rel=1e-4)

    params = summed_gradients(model, [(token_ids, valid_length)])
    clip_gradients(params, max_grad_norm, group_size=4)
    for one_batch, two_batches in zip((p.grad().asnumpy() for p in params), accumulated):
        np.testing.assert_allclose(one_batch, two_batches, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('num_classes, batch', [(2, 1), (7, 5)])
def test_classifier_shapes_hybridized_and_not(num_classes, batch):
    model = build_classifier(dataclasses.replace(TINY, vocab_size=50), num_classes, dropout=0.5)
    token_ids = mx.nd.array(np.random.RandomState(1).randint(5, 50, (batch, 12)), dtype='int32')
    args = (token_ids, mx.nd.zeros_like(token_ids), mx.nd.array([12] * batch, dtype='int32'))
    imperative = model(*args).asnumpy()
    model.hybridize(static_alloc=True)
    assert imperative.shape == (batch, num_classes)
    np.testing.assert_allclose(model(*args).asnumpy(), imperative, rtol=1e-5, atol=1e-6)


def test_head_initialised_from_normal_002():
    model = build_classifier(dataclasses.replace(TINY, vocab_size=50), 400)
    token_ids = mx.nd.ones((1, 4), dtype='int32')
    model(token_ids, token_ids, mx.nd.array([4]))  # shapes are inferred on the first call
    weight = model.classifier[-1].weight.data().asnumpy()
    assert abs(weight.std() - 0.02) < 0.002 and abs(weight.mean()) < 0.002
    assert not model.classifier[-1].bias.data().asnumpy().any()


# ---------------------------------------------------------------------------- whole runs



def test_accumulating_k_batches_equals_one_k_times_larger_batch(tmp_path, small_data, no_dropout_tiny_bert):
    train(run_config(tmp_path, small_data, 'acc', dropout=0.0, batch_size=8, accumulate=3))
    train(run_config(tmp_path, small_data, 'big', dropout=0.0, batch_size=24, accumulate=1))
    assert_same_params(final_params(tmp_path / 'acc'), final_params(tmp_path / 'big'), atol=1e-5)


def test_resume_equals_uninterrupted_run(tmp_path, small_data, monkeypatch):
    train(run_config(tmp_path, small_data, 'straight', num_epochs=2))

    def killed(*args):
        raise KeyboardInterrupt('killed after the first checkpoint')
    monkeypatch.setattr(train_module, 'write_plots', killed)
    with pytest.raises(KeyboardInterrupt):
        train(run_config(tmp_path, small_data, 'resumed', num_epochs=2))
    monkeypatch.undo()
    train(run_config(tmp_path, small_data, 'resumed', num_epochs=2, resume=True))
    assert_same_params(final_params(tmp_path / 'straight'), final_params(tmp_path / 'resumed'), atol=0)


def test_cpu_runs_repeat_exactly(tmp_path, small_data):
    first = train(run_config(tmp_path, small_data, 'first'))
    train(run_config(tmp_path, small_data, 'second'))
    assert_same_params(final_params(tmp_path / 'first'), final_params(tmp_path / 'second'), atol=0)
    assert (tmp_path / 'first' / 'best' / 'config.json').is_file()
    assert first.test_report['confusion_matrix']
    assert 'test' not in first.history['epochs'][0]  # the test set is scored once, after selection


def test_emotion_run_with_kobert_tokenizer_beats_chance(tmp_path, shared_dir, kobert_dir):
    frame = pd.read_csv(shared_dir / 'data' / 'emotion' / 'single_turn_emotion_cp949.csv', encoding='cp949')
    subset = frame.groupby('Emotion').sample(300, random_state=0)
    path = tmp_path / 'emotion.csv'
    subset.to_csv(path, index=False, encoding='cp949')
    config = run_config(tmp_path, str(path), 'emotion', text_column='Sentence', label_column='Emotion',
                        kobert_dir=str(kobert_dir), max_len=48, batch_size=32, num_epochs=3, learning_rate=5e-4,
                        valid_size=0.0)
    classifier = train(config)
    report = classifier.test_report  # valid_size=0: the selected model is the last epoch's
    assert classifier.label_map.names == ['공포', '놀람', '분노', '슬픔', '중립', '행복', '혐오']
    assert len(classifier.tokenizer.vocab) == 8002
    assert sum(report['support']) == 7 * 60, 'evaluation must cover the whole test split'
    assert report['accuracy'] > 0.25, report  # chance is 1/7


@pytest.mark.parametrize('change, error, match', [
    (dict(text_column='document'), DataError, "no column 'document'"),
    (dict(num_classes=3), DataError, 'distinct labels'),
    (dict(num_classes=1), ValueError, 'num_classes=1'),
    (dict(max_len=600), ValueError, 'max_len=600'),
    (dict(ctx='gpu:0'), RuntimeError, 'CPU-only build|GPU 0 requested'),
    (dict(bert='huge'), ValueError, "bert='huge'"),
])
def test_bad_settings_are_named(tmp_path, small_data, change, error, match):
    with pytest.raises(error, match=match):
        train(run_config(tmp_path, small_data, 'bad', **change))


def test_undecodable_and_empty_files_are_named(tmp_path):
    undecodable = tmp_path / 'bad.csv'
    undecodable.write_bytes(b'text,label\n\xff\xfe\x80\x81,a\n')
    with pytest.raises(DataError, match='bad.csv: cannot decode'):
        train(run_config(tmp_path, str(undecodable), 'x'))
    empty = tmp_path / 'empty.tsv'
    empty.write_text('text\tlabel\n\t1\n', encoding='utf-8')
    with pytest.raises(DataError, match='empty.tsv: no usable rows'):
        train(run_config(tmp_path, str(empty), 'y'))


def test_gpu_on_cpu_only_build_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr('kobert_gluon.device.cuda_build', lambda: False)
    with pytest.raises(RuntimeError, match='CPU-only build.*mxnet-cu'):
        train(TrainConfig.demo(ctx='gpu', output_dir=str(tmp_path / 'never')))
    assert not (tmp_path / 'never').exists()
    assert parse_ctx('cpu') == [mx.cpu()]
    with pytest.raises(ValueError, match="'tpu'"):
        parse_ctx('tpu')


def test_several_devices_split_each_batch_and_equal_one(tmp_path, small_data, no_dropout_tiny_bert, monkeypatch):
    """The --ctx gpu:0,1 path (split_and_load, allreduce, clip, update) on two CPU contexts."""
    train(run_config(tmp_path, small_data, 'one', dropout=0.0, batch_size=16))
    monkeypatch.setattr(train_module, 'parse_ctx', lambda spec: [mx.cpu(0), mx.cpu(1)])
    train(run_config(tmp_path, small_data, 'two', dropout=0.0, batch_size=16))
    assert_same_params(final_params(tmp_path / 'one'), final_params(tmp_path / 'two'), atol=1e-5)
