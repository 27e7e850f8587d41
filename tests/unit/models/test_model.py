"""KoBERT's network must be gluonnlp's bert_12_768_12, parameter name for parameter name."""
import mxnet as mx
import numpy as np
import gluonnlp as nlp
import pytest

from kobert_gluon import ConfigError, assets, get_mxnet_kobert_model
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.heads import BERTClassifier
from kobert_gluon.models.bert import build_bert, load_pretrained_bert
from kobert_gluon.text.tokenizer import get_vocab


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
def gluonnlp_params_file(bert_12_768_12_params, kobert_dir):
    """SKT's layout from gluonnlp's own bert_12_768_12, and that model's outputs on example inputs."""
    vocab = get_vocab(kobert_dir=str(kobert_dir))
    reference, _ = nlp.model.get_model('bert_12_768_12', vocab=vocab, pretrained=False, use_pooler=True,
                                       use_decoder=True, use_classifier=True)
    reference.load_parameters(str(bert_12_768_12_params))
    expected = [o.asnumpy() for o in reference(*example_inputs(), example_masked_positions())]
    return bert_12_768_12_params, expected, vocab


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
    assert 'model_file=PATH' in str(error.value) and '--init_from PATH' in str(error.value)  # own weights


def test_training_with_data_uses_the_pretrained_12_layer_kobert(gluonnlp_params_file, kobert_dir, tmp_path, monkeypatch):
    """The real job (--data + --kobert_dir): 12 layers, weights from the params file.

    The learning rate is positive (TrainConfig requires it) but far too small to move a weight."""
    import dataclasses
    import shutil

    from kobert_gluon.training.config import TrainConfig

    from kobert_gluon.training.finetune import train
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
                                   learning_rate=1e-30, output_dir=str(tmp_path / 'run'), ctx='cpu'))
    assert classifier.bert_config == BertConfig.kobert()
    saved = mx.nd.load(str(path))
    trained = classifier.model.bert._collect_params_with_prefix()
    for name in ('word_embed.0.weight', 'encoder.transformer_cells.11.ffn.ffn_2.weight', 'pooler.weight'):
        np.testing.assert_allclose(trained[name].data().asnumpy(), saved[name].asnumpy(), rtol=1e-6, atol=1e-20)


# --- own weights: the bert_12_768_12 layout is checked, names and shapes ------------------------

def saved_small_bert(tmp_path, name, **sizes):
    bert = build_bert(BertConfig.small(**sizes))
    bert.initialize(init=mx.init.Normal(0.02))
    bert(*example_inputs(), example_masked_positions())
    path = tmp_path / f'{name}.params'
    bert.save_parameters(str(path))
    return path


def small_bert():
    bert = build_bert(BertConfig.small(), use_decoder=False, use_classifier=False)
    bert.initialize()
    return bert


def test_layout_check_lists_missing_layers(tmp_path):
    path = saved_small_bert(tmp_path, 'one_layer', num_layers=1)
    with pytest.raises(ConfigError) as caught:
        load_pretrained_bert(small_bert(), str(path), mx.cpu())
    message = str(caught.value)
    assert str(path) in message and 'bert_12_768_12 layout' in message
    assert '16 missing (encoder.transformer_cells.1.attention_cell.proj_key.bias' in message  # 16 per layer


def test_layout_check_lists_other_shapes(tmp_path):
    path = saved_small_bert(tmp_path, 'narrow', units=64, hidden_size=256)
    with pytest.raises(ConfigError) as caught:
        load_pretrained_bert(small_bert(), str(path), mx.cpu())
    message = str(caught.value)
    assert 'with other shapes (encoder.layer_norm.beta (64,) instead of (128,), ' in message
    assert 'encoder.position_weight (128, 64) instead of (128, 128)' in message
    assert 'more)' in message  # the list is cut short


def test_layout_check_rejects_a_classifier_file_and_non_params(tmp_path):
    bert = build_bert(BertConfig.small(), use_decoder=False, use_classifier=False)
    classifier = BERTClassifier(bert, num_classes=2)
    classifier.initialize()
    classifier(*example_inputs())
    path = tmp_path / 'classifier.params'
    classifier.save_parameters(str(path))
    with pytest.raises(ConfigError, match=r'missing \(encoder\..*unexpected \(bert\.'):
        load_pretrained_bert(small_bert(), str(path), mx.cpu())
    junk = tmp_path / 'junk.params'
    junk.write_bytes(b'not params')
    with pytest.raises(ConfigError, match=f'{junk}: not an MXNet parameter file'):
        load_pretrained_bert(small_bert(), str(junk), mx.cpu())


def test_fitting_file_loads_and_extra_heads_are_ignored(tmp_path):
    path = saved_small_bert(tmp_path, 'full')  # with NSP classifier and MLM decoder
    bert = small_bert()
    load_pretrained_bert(bert, str(path), mx.cpu())
    saved = mx.nd.load(str(path))
    for name, param in bert._collect_params_with_prefix().items():
        np.testing.assert_array_equal(param.data().asnumpy(), saved[name].asnumpy())


def test_v01_get_kobert_model_checks_the_layout(tmp_path, kobert_dir):
    from kobert_gluon.mxnet_kobert import get_kobert_model
    path = saved_small_bert(tmp_path, 'small')
    with pytest.raises(ConfigError, match=r'small.params is not .* 160 missing \(encoder\.transformer_cells\.10\..* '
                                          r'with other shapes \(decoder\.0\.bias \(128,\) instead of \(768,\)'):
        get_kobert_model(str(path), str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece'))


# --- BERTClassifier and the notebook's class ----------------------------------------------------

class NotebookBERTClassifier(mx.gluon.nn.Block):
    """Copied from SKT's NSMC notebook (scripts/NSMC/naver_review_classifications_gluon_kobert.ipynb,
    v0.2.3, cell 14), names and all, to check that its saved params keep loading into ours."""

    def __init__(self,
                 bert,
                 num_classes=2,
                 dropout=None,
                 prefix=None,
                 params=None):
        super(NotebookBERTClassifier, self).__init__(prefix=prefix, params=params)
        self.bert = bert
        with self.name_scope():
            self.classifier = mx.gluon.nn.HybridSequential(prefix=prefix)
            if dropout:
                self.classifier.add(mx.gluon.nn.Dropout(rate=dropout))
            self.classifier.add(mx.gluon.nn.Dense(units=num_classes))

    def forward(self, inputs, token_types, valid_length=None):
        _, pooler = self.bert(inputs, token_types, valid_length)
        return self.classifier(pooler)


@pytest.mark.parametrize('hybridize', [False, True])
def test_notebook_params_load_and_valid_length_is_optional(tmp_path, hybridize):
    config = BertConfig.small()
    notebook = NotebookBERTClassifier(build_bert(config, use_decoder=False, use_classifier=False),
                                      num_classes=3, dropout=0.1)
    notebook.initialize(init=mx.init.Normal(0.02))
    token_ids, segment_ids, valid_length = example_inputs()
    expected_masked = notebook(token_ids, segment_ids, valid_length).asnumpy()
    expected_unmasked = notebook(token_ids, segment_ids).asnumpy()
    path = tmp_path / 'notebook.params'
    notebook.save_parameters(str(path))

    ours = BERTClassifier(build_bert(config, use_decoder=False, use_classifier=False), num_classes=3, dropout=0.1)
    ours.load_parameters(str(path))
    if hybridize:
        ours.hybridize()
    np.testing.assert_allclose(ours(token_ids, segment_ids, valid_length).asnumpy(), expected_masked, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(token_ids, segment_ids).asnumpy(), expected_unmasked, rtol=1e-5, atol=1e-6)
    for unmasked in (ours(token_ids, segment_ids, None), ours(token_ids, segment_ids, valid_length=None)):
        np.testing.assert_allclose(unmasked.asnumpy(), expected_unmasked, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(token_ids, segment_ids, valid_length=valid_length).asnumpy(), expected_masked,
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected_masked[1], expected_unmasked[1])  # row 1 is padded: masking matters
