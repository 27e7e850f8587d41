"""The model directory: save/load round trips, predictions on any input, clear errors."""
import gluonnlp as nlp
import mxnet as mx
import numpy as np
import pytest

from kobert_gluon.errors import KobertGluonError
from kobert_gluon.text.data import BERTDataset
from kobert_gluon.fileio import read_json
from kobert_gluon.errors import ModelDirectoryError
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.training.config import TrainConfig
from kobert_gluon.training.splits import load_splits

SENTENCES = ['배송이 빨라서 좋았어요', '다시는 안 삽니다', '그냥 그래요', '연기가 정말 훌륭했다',
             '화면이 너무 어두워서 별로']
UNUSUAL = {
    'very long': '정말 최고의 영화였습니다 ' * 400,  # far past max_len
    'empty': '',
    'whitespace only': ' \t  \u3000 ',
    'emoji': '😀😡👍🏻 완전 좋아요 🎉',
    'hanja': '漢字와 韓國語가 섞인 文章',
    'mixed': 'KoBERT 2.0 버전은 100% 좋아요!!! ABC-123',
    'control and symbols': '줄\n바꿈\r과 탭\t그리고 ©®™ ½',
}


def assert_probabilities(probabilities, rows, num_classes):
    assert probabilities.shape == (rows, num_classes)
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_save_then_load_on_cpu_gives_identical_outputs(demo_run, tmp_path):
    trained = demo_run.classifier
    trained.save(tmp_path / 'model')

    loaded = TextClassifier.load(tmp_path / 'model', ctx=mx.cpu())

    assert loaded.ctx == mx.cpu()
    assert loaded.label_map.names == trained.label_map.names
    assert (loaded.max_len, loaded.bert_config) == (trained.max_len, trained.bert_config)
    np.testing.assert_array_equal(loaded.logits(SENTENCES), trained.logits(SENTENCES))
    np.testing.assert_array_equal(loaded.predict_proba(SENTENCES), trained.predict_proba(SENTENCES))
    assert loaded.predict(SENTENCES) == trained.predict(SENTENCES)


def test_training_leaves_loadable_best_and_last_models(demo_run, demo_model_dir):
    last = TextClassifier.load(demo_run.run_dir / 'last' / 'model')
    best = TextClassifier.load(demo_model_dir)

    # last/ holds the weights the run ended with, i.e. the in-memory classifier.
    np.testing.assert_array_equal(last.logits(SENTENCES), demo_run.classifier.logits(SENTENCES))
    # best/ scores the best validation accuracy of the run on the run's own validation split.
    config = TrainConfig(**read_json(demo_run.run_dir / 'train_config.json'))
    texts, _, labels = zip(*load_splits(config).valid)
    accuracy = np.mean(best.logits(list(texts)).argmax(axis=1) == np.array(labels))
    best_accuracy = max(epoch['valid']['accuracy'] for epoch in demo_run.classifier.history['epochs'])
    assert accuracy == pytest.approx(best_accuracy)


def test_predictions_for_no_one_and_a_thousand_sentences(demo_classifier):
    names = demo_classifier.label_map.names
    num_classes = len(names)

    assert demo_classifier.predict([]) == []
    assert demo_classifier.logits([]).shape == (0, num_classes)
    assert_probabilities(demo_classifier.predict_proba([]), 0, num_classes)

    assert len(demo_classifier.predict(SENTENCES[:1])) == 1
    assert_probabilities(demo_classifier.predict_proba(SENTENCES[:1]), 1, num_classes)

    many = [f'{SENTENCES[i % len(SENTENCES)]} {"진짜 " * (i % 7)}{i}' for i in range(1000)]
    labels = demo_classifier.predict(many)
    assert len(labels) == 1000 and set(labels) <= set(names)
    assert_probabilities(demo_classifier.predict_proba(many), 1000, num_classes)


def test_batch_size_and_padding_do_not_change_results(demo_classifier):
    # Different batch sizes pad the same sentence to different widths; the attention mask
    # (valid_length) must make the padding invisible.
    texts = [f'{s} {"아주 " * n}' for n, s in enumerate(SENTENCES * 3)]
    reference = demo_classifier.logits(texts, batch_size=len(texts))
    for batch_size in (1, 4):
        np.testing.assert_allclose(demo_classifier.logits(texts, batch_size=batch_size), reference, atol=1e-5)


def test_batches_are_padded_to_their_longest_sentence(demo_classifier):
    encoded = demo_classifier.encode(['짧음', '조금 더 긴 문장입니다 정말로'])
    token_ids, segment_ids, valid_length = next(demo_classifier.batches(encoded, batch_size=2))

    assert token_ids.shape[1] == valid_length.max() < demo_classifier.max_len
    assert token_ids.dtype == segment_ids.dtype == valid_length.dtype == np.int32
    pad_id = demo_classifier.tokenizer.vocab[demo_classifier.tokenizer.vocab.padding_token]
    assert np.all(token_ids[0, valid_length[0]:] == pad_id)


def test_prediction_padding_equals_the_training_padding(demo_classifier):
    """TextClassifier.batches against the two paths training pads with in gluonnlp."""
    texts = ['짧음', '조금 더 긴 문장입니다 정말로', '중간 길이 문장']
    c = demo_classifier
    vocab = c.tokenizer.vocab
    pad_id = vocab[vocab.padding_token]
    fixed = BERTDataset([[t, 0] for t in texts], 0, 1, c.tokenizer, c.max_len, True, False)
    token_ids, segment_ids, valid_length = next(c.batches(c.encode(texts), 3, width=c.max_len))
    np.testing.assert_array_equal(token_ids, np.stack([item[0] for item in fixed]))
    np.testing.assert_array_equal(segment_ids, np.stack([item[2] for item in fixed]))
    np.testing.assert_array_equal(valid_length, [int(item[1]) for item in fixed])

    bucketed = BERTDataset([[t, 0] for t in texts], 0, 1, c.tokenizer, c.max_len, False, False)
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=pad_id, dtype='int32'),
                                       nlp.data.batchify.Stack('int32'),
                                       nlp.data.batchify.Pad(axis=0, pad_val=0, dtype='int32'),
                                       nlp.data.batchify.Stack('int32'))
    expected = batchify([bucketed[i] for i in range(3)])
    token_ids, segment_ids, valid_length = next(c.batches(c.encode(texts), 3))
    np.testing.assert_array_equal(token_ids, expected[0].asnumpy())
    np.testing.assert_array_equal(segment_ids, expected[2].asnumpy())
    np.testing.assert_array_equal(valid_length, expected[1].asnumpy())


def test_long_sentences_are_truncated_at_max_len(demo_classifier):
    long_text = UNUSUAL['very long']
    (_, valid_length, _), = demo_classifier.encode([long_text])
    assert int(valid_length) == demo_classifier.max_len

    # Whatever follows the first max_len tokens cannot matter.
    logits = demo_classifier.logits([long_text, long_text + ' 하지만 결말은 최악'])
    np.testing.assert_array_equal(logits[0], logits[1])


def test_unusual_sentences_are_classified(demo_classifier):
    texts = list(UNUSUAL.values())
    labels = demo_classifier.predict(texts)
    probabilities = demo_classifier.predict_proba(texts)

    assert len(labels) == len(texts)
    assert set(labels) <= set(demo_classifier.label_map.names)
    assert_probabilities(probabilities, len(texts), demo_classifier.num_classes)
    assert np.all(np.isfinite(demo_classifier.logits(texts)))


@pytest.mark.parametrize('texts, match', [('한 문장', 'iterable\\) of strings, got str'),
                                          (None, 'got NoneType'), (42, 'got int'),
                                          (['문장', None], r'texts\[1\]'), (['문장', 'a\ud800b'], r'texts\[1\]')])
def test_encode_rejects_what_is_not_a_list_of_strings(demo_classifier, texts, match):
    with pytest.raises(KobertGluonError, match=match):
        demo_classifier.predict(texts)


def test_damaged_model_directory_is_named(broken_model_dir):
    model_dir, words = broken_model_dir
    with pytest.raises(ModelDirectoryError) as caught:
        TextClassifier.load(model_dir, ctx=mx.cpu())
    message = str(caught.value)
    assert str(model_dir) in message
    for word in words:
        assert word in message
    assert '\n' not in message and 'Traceback' not in message


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ModelDirectoryError, match='does not exist'):
        TextClassifier.load(tmp_path / 'nowhere')
