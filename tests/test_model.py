"""KoBERT's network must be gluonnlp's bert_12_768_12, parameter name for parameter name."""
import mxnet as mx
import numpy as np
import gluonnlp as nlp
import pytest

from kobert_gluon import assets, get_mxnet_kobert_model
from kobert_gluon.model import BertConfig, build_bert
from kobert_gluon.tokenizer import get_vocab


def test_kobert_config_is_bert_12_768_12():
    hparams = nlp.model.bert.bert_12_768_12_hparams
    config = BertConfig.kobert()
    for field in ('num_layers', 'units', 'hidden_size', 'num_heads', 'max_length', 'dropout', 'token_type_vocab_size'):
        assert getattr(config, field) == hparams[field], field
    assert config.vocab_size == 8002


def test_config_rejects_impossible_sizes():
    with pytest.raises(ValueError, match='divisible'):
        BertConfig(units=100, num_heads=12)
    with pytest.raises(ValueError, match='max_length=1024'):
        BertConfig(max_length=1024)


@pytest.fixture(scope='module')
def gluonnlp_params_file(tmp_path_factory, kobert_dir):
    """A params file saved from gluonnlp's own bert_12_768_12, standing in for SKT's file."""
    vocab = get_vocab(kobert_dir=str(kobert_dir))
    reference, _ = nlp.model.get_model('bert_12_768_12', vocab=vocab, pretrained=False, use_pooler=True,
                                       use_decoder=True, use_classifier=True)
    reference.initialize(init=mx.init.Normal(0.02))
    inputs = example_inputs()
    expected = [o.asnumpy() for o in reference(*inputs, example_masked_positions())]
    path = tmp_path_factory.mktemp('params') / 'bert_12_768_12.params'
    reference.save_parameters(str(path))
    return path, expected, vocab


def example_inputs():
    rng = np.random.RandomState(0)
    token_ids = mx.nd.array(rng.randint(5, 8002, (2, 16)), dtype='int32')
    segment_ids = mx.nd.array(rng.randint(0, 2, (2, 16)), dtype='int32')
    return token_ids, segment_ids, mx.nd.array([16, 9], dtype='float32')


def example_masked_positions():
    return mx.nd.array([[1, 3], [2, 5]], dtype='int32')


def test_gluonnlp_bert_12_768_12_params_load_into_kobert(gluonnlp_params_file, kobert_dir):
    path, expected, _ = gluonnlp_params_file
    model, vocab = get_mxnet_kobert_model(model_file=str(path), kobert_dir=str(kobert_dir), ctx=mx.cpu(0))
    assert len(vocab) == 8002
    outputs = model(*example_inputs(), example_masked_positions())
    assert len(outputs) == len(expected) == 4  # sequence, pooled, NSP classifier, MLM decoder
    for got, want in zip(outputs, expected):
        np.testing.assert_array_equal(got.asnumpy(), want)


def test_parameter_names_match_bert_12_768_12(gluonnlp_params_file):
    path, _, _ = gluonnlp_params_file
    ours = build_bert(BertConfig.kobert())
    ours.initialize()
    ours(*example_inputs(), example_masked_positions())
    saved = set(mx.nd.load(str(path)))
    assert set(ours._collect_params_with_prefix()) == saved


def test_without_pooler_and_heads_extra_params_are_ignored(gluonnlp_params_file, kobert_dir):
    path, expected, _ = gluonnlp_params_file
    model, _ = get_mxnet_kobert_model(use_pooler=False, use_decoder=False, use_classifier=False,
                                      model_file=str(path), kobert_dir=str(kobert_dir))
    np.testing.assert_array_equal(model(*example_inputs()).asnumpy(), expected[0])


def test_missing_params_file_says_where_to_put_it(kobert_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('KOBERT_BASE_URL', 'http://127.0.0.1:9')  # discard port: nothing listens
    with pytest.raises(assets.AssetError, match='mxnet_kobert_45b6957552.params') as error:
        get_mxnet_kobert_model(kobert_dir=str(kobert_dir), cachedir=str(tmp_path))
    assert str(kobert_dir) in str(error.value)


def test_training_with_data_uses_the_pretrained_12_layer_kobert(gluonnlp_params_file, kobert_dir, tmp_path, monkeypatch):
    """The real job (--data + --kobert_dir): 12 layers, weights from the params file."""
    import dataclasses
    import shutil

    from kobert_gluon.training import TrainConfig, train
    path, _, _ = gluonnlp_params_file
    home = tmp_path / 'kobert'
    home.mkdir()
    shutil.copy(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece', home)
    shutil.copy(path, home / 'mxnet_kobert_45b6957552.params')
    # Stand-in weights have their own md5; everything else is the real lookup.
    registered = assets.ASSETS['mxnet_params']
    monkeypatch.setitem(assets.ASSETS, 'mxnet_params', dataclasses.replace(registered, md5=assets.md5sum(path)))
    data = tmp_path / 'data.tsv'
    data.write_text('text\tlabel\n' + ''.join(f'문장 {i}번 {"좋다" if i % 2 else "싫다"}\t{i % 2}\n' for i in range(20)),
                    encoding='utf-8')
    classifier = train(TrainConfig(data=str(data), kobert_dir=str(home), max_len=16, batch_size=8, num_epochs=1,
                                   learning_rate=0.0, output_dir=str(tmp_path / 'run'), ctx='cpu'))
    assert classifier.bert_config == BertConfig.kobert()
    saved = mx.nd.load(str(path))
    trained = classifier.model.bert._collect_params_with_prefix()
    for name in ('word_embed.0.weight', 'encoder.transformer_cells.11.ffn.ffn_2.weight', 'pooler.weight'):
        np.testing.assert_array_equal(trained[name].data().asnumpy(), saved[name].asnumpy())
