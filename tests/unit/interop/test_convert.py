"""transformers (PyTorch) BERT checkpoints <-> the Gluon model, checked against transformers itself.

Every checkpoint is a randomly initialised model the test saves; outputs are compared with
what transformers computes on the same ids, segments and valid lengths.
"""
import json
import os
import pickle
import shutil
import sys

import mxnet as mx
import numpy as np
import pytest
CONVERT_EXTRA = 'the convert extra is not installed (bash scripts/install.sh convert)'
pytest.importorskip('safetensors', reason=CONVERT_EXTRA)
torch = pytest.importorskip('torch', reason=CONVERT_EXTRA)
transformers = pytest.importorskip('transformers', reason=CONVERT_EXTRA)
import safetensors.numpy  # noqa: E402

pytestmark = pytest.mark.extra

import gluonnlp as nlp
from kobert_gluon import cli
from kobert_gluon.interop import transformers as convert
from kobert_gluon.text.token_ids import TokenIds
from kobert_gluon.text.data import read_table
from kobert_gluon.errors import ConversionError, MissingExtraError
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.bert import build_bert, load_pretrained_bert
from kobert_gluon.models.heads import build_classifier
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.text.tokenizer import get_bert_tokenizer, get_vocab

TOLERANCE = 1e-4
SMALL = dict(vocab_size=8002, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=128)
LABELS = ['공포', '놀람', '분노']
SPIECE = 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
# Text a tokenizer may treat differently: punctuation, ellipsis, digits with commas, CJK,
# accents, full-width forms, control and zero-width characters, emoji, odd whitespace.
TRICKY = ['한국어 모델을 공유합니다.', '진짜… 너무해!!', '1,000원이야? 2,500,000,', '漢字와 韓國語', 'Café naïve résumé',
          'ＡＢＣ！ 全角', '탭\t줄\n바꿈\r끝', 'zero\u200bwidth\u200d결합', '😀👍🏻 좋아요 🎉', '  앞뒤 공백  ', '',
          '"인용" `따옴` \'\'두개\'\'', '#해시 @멘션 $100 ^^ ~_~', '\u3000전각공백\u00a0nbsp', '가\u0301나']


def torch_forward(model, ids, segments, valid_length):
    mask = (np.arange(ids.shape[1])[None, :] < valid_length[:, None]).astype(np.int64)
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segments),
                     attention_mask=torch.tensor(mask)), mask


def random_inputs(batch=3, length=16, vocab_size=8002, seed=0):
    rng = np.random.RandomState(seed)
    valid_length = np.array([length] + list(rng.randint(1, length, batch - 1)))
    return rng.randint(0, vocab_size, (batch, length)), rng.randint(0, 2, (batch, length)), valid_length


def gluon_arrays(*arrays):
    return [mx.nd.array(array, dtype='float32') for array in arrays]


def save_hf(model, directory, **kwargs):
    model.save_pretrained(str(directory), **kwargs)
    return directory


@pytest.fixture(scope='module')
def hf_bert(tmp_path_factory):
    torch.manual_seed(1)
    model = transformers.BertModel(transformers.BertConfig(**SMALL)).eval()
    return model, save_hf(model, tmp_path_factory.mktemp('hf-bert'))


@pytest.fixture(scope='module')
def hf_classifier(tmp_path_factory):
    torch.manual_seed(2)
    config = transformers.BertConfig(**SMALL, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                     label2id={name: i for i, name in enumerate(LABELS)})
    model = transformers.BertForSequenceClassification(config).eval()
    return model, save_hf(model, tmp_path_factory.mktemp('hf-classifier'))


def assert_bert_matches(bert, hf_model, vocab_size=8002):
    ids, segments, valid_length = random_inputs(vocab_size=vocab_size)
    expected, mask = torch_forward(hf_model, ids, segments, valid_length)
    sequence, pooled = bert(*gluon_arrays(ids, segments, valid_length))
    # Padded positions are garbage in both stacks (and differ): compare real tokens only.
    sequence_error = np.abs(sequence.asnumpy() - expected.last_hidden_state.numpy()) * mask[..., None]
    assert sequence_error.max() < TOLERANCE
    assert np.abs(pooled.asnumpy() - expected.pooler_output.numpy()).max() < TOLERANCE


# ---------------------------------------------------------------------------- transformers -> gluon

def test_kobert_size_bert_from_safetensors_matches_transformers(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=8002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, max_position_embeddings=512)
    hf_model = transformers.BertModel(config).eval()
    save_hf(hf_model, tmp_path / 'kobert-hf')
    assert os.path.isfile(tmp_path / 'kobert-hf' / 'model.safetensors')

    bert = convert.from_transformers(tmp_path / 'kobert-hf', tmp_path / 'kobert-gluon')

    assert_bert_matches(bert, hf_model)
    # The written params file is the bert_12_768_12 layout: what --init_from and SKT's loader take.
    reloaded = build_bert(BertConfig.kobert(), use_decoder=False, use_classifier=False)
    reloaded.load_parameters(str(tmp_path / 'kobert-gluon' / 'bert.params'))
    assert_bert_matches(reloaded, hf_model)


def test_small_bert_from_pytorch_bin_matches_transformers(hf_bert, tmp_path):
    hf_model, _ = hf_bert
    # transformers 5 writes safetensors only; older ones (and many hub repos) wrote this.
    hf_model.config.save_pretrained(str(tmp_path))
    torch.save(hf_model.state_dict(), tmp_path / 'pytorch_model.bin')

    assert_bert_matches(convert.from_transformers(tmp_path), hf_model)


def test_classifier_becomes_a_model_directory_with_the_same_logits(hf_classifier, tmp_path, kobert_dir):
    hf_model, hf_dir = hf_classifier

    convert.from_transformers(hf_dir, tmp_path / 'model', kobert_dir=kobert_dir, max_len=32)
    classifier = TextClassifier.load(tmp_path / 'model')

    assert classifier.label_map.names == LABELS and classifier.max_len == 32
    ids, segments, valid_length = random_inputs()
    expected, _ = torch_forward(hf_model, ids, segments, valid_length)
    logits = classifier.model(*gluon_arrays(ids, segments, valid_length)).asnumpy()
    assert np.abs(logits - expected.logits.numpy()).max() < TOLERANCE


def test_init_from_a_transformers_directory(hf_bert):
    hf_model, hf_dir = hf_bert
    config = BertConfig(num_layers=2, units=64, hidden_size=128, num_heads=4, max_length=128)

    model = build_classifier(config, num_classes=2, bert_params=str(hf_dir))

    assert_bert_matches(model.bert, hf_model)


# ---------------------------------------------------------------------------- gluon -> transformers

def test_demo_model_in_pytorch_predicts_the_same_labels(demo_model_dir, demo_classifier, tmp_path):
    convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    hf_model = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / 'hf')).eval()
    token_ids = TokenIds.from_directory(tmp_path / 'hf')
    texts = ['배송이 빨라서 너무 좋았어요', '다시는 안 삽니다', '그냥 그래요!', '정말 최고의 영화였습니다 ' * 30] + TRICKY[:-4]

    batch = token_ids(texts, max_len=demo_classifier.max_len)
    with torch.no_grad():
        logits = hf_model(**{name: torch.tensor(value) for name, value in batch.items()}).logits.numpy()

    labels = [hf_model.config.id2label[i] for i in logits.argmax(axis=1)]
    assert labels == demo_classifier.predict(texts)
    assert np.abs(logits - demo_classifier.logits(texts)).max() < TOLERANCE


def test_bert_params_file_to_transformers_drops_pretraining_heads(tmp_path, kobert_dir):
    config = BertConfig(num_layers=2, units=64, hidden_size=128, num_heads=4, max_length=128)
    bert = build_bert(config)  # with the MLM decoder and NSP classifier, as SKT's file has
    bert.initialize(init=mx.init.Normal(0.02))
    ids, segments, valid_length = random_inputs()
    bert(*gluon_arrays(ids, segments, valid_length), mx.nd.zeros((3, 1)))
    bert.save_parameters(str(tmp_path / 'bert.params'))

    convert.to_transformers(tmp_path / 'bert.params', tmp_path / 'hf', num_heads=4, tokenizer=kobert_dir / SPIECE)
    hf_model = transformers.BertModel.from_pretrained(str(tmp_path / 'hf')).eval()

    plain = build_bert(config, use_decoder=False, use_classifier=False)
    plain.load_parameters(str(tmp_path / 'bert.params'), ignore_extra=True)
    assert_bert_matches(plain, hf_model)
    # ... and back, with the tokenizer travelling both ways.
    convert.from_transformers(tmp_path / 'hf', tmp_path / 'gluon')
    convert.to_transformers(tmp_path / 'gluon', tmp_path / 'hf-again')
    assert_same_arrays(safetensors.numpy.load_file(str(tmp_path / 'hf-again' / 'model.safetensors')),
                       safetensors.numpy.load_file(str(tmp_path / 'hf' / 'model.safetensors')))
    assert os.listdir(tmp_path / 'hf-again' / 'tokenizer') == [SPIECE]
    texts = TRICKY[:3]
    assert TokenIds.from_directory(tmp_path / 'hf-again')(texts)['input_ids'].tolist() == \
        TokenIds.from_directory(tmp_path / 'hf')(texts)['input_ids'].tolist()


# ---------------------------------------------------------------------------- round trips

def load_params(path):
    return {name: array.asnumpy() for name, array in mx.nd.load(str(path)).items()}


def assert_same_arrays(left, right):
    assert sorted(left) == sorted(right)
    for name in left:
        assert left[name].dtype == right[name].dtype and np.array_equal(left[name], right[name]), name


def test_gluon_to_transformers_to_gluon_is_bit_exact(demo_model_dir, tmp_path):
    convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    convert.from_transformers(tmp_path / 'hf', tmp_path / 'back')

    assert_same_arrays(load_params(tmp_path / 'back' / 'model.params'), load_params(demo_model_dir / 'model.params'))
    original, back = (json.loads((d / 'config.json').read_text(encoding='utf-8')) for d in (demo_model_dir, tmp_path / 'back'))
    assert back == original
    assert sorted(os.listdir(tmp_path / 'back' / 'tokenizer')) == sorted(os.listdir(demo_model_dir / 'tokenizer'))


@pytest.mark.parametrize('which', ['bert', 'classifier'])
def test_transformers_to_gluon_to_transformers_is_bit_exact(which, hf_bert, hf_classifier, tmp_path, kobert_dir):
    _, hf_dir = hf_bert if which == 'bert' else hf_classifier

    convert.from_transformers(hf_dir, tmp_path / 'gluon', kobert_dir=kobert_dir)
    convert.to_transformers(tmp_path / 'gluon', tmp_path / 'hf', num_heads=4)

    assert_same_arrays(safetensors.numpy.load_file(str(tmp_path / 'hf' / 'model.safetensors')),
                       safetensors.numpy.load_file(str(hf_dir / 'model.safetensors')))
    original, back = (json.loads((d / 'config.json').read_text(encoding='utf-8')) for d in (hf_dir, tmp_path / 'hf'))
    for key in ('architectures', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
                'intermediate_size', 'max_position_embeddings', 'type_vocab_size', 'layer_norm_eps', 'hidden_act'):
        assert back[key] == original[key], key
    if which == 'classifier':
        assert back['id2label'] == original['id2label']


# ---------------------------------------------------------------------------- token ids

def gluonnlp_ids(tokenizer, texts, max_len):
    transform = nlp.data.BERTSentenceTransform(tokenizer, max_seq_length=max_len, pad=False, pair=False)
    return [transform([text])[0].tolist() for text in texts]


@pytest.mark.parametrize('files', [[SPIECE], ['tokenizer_78b3253a26.model', 'kobertvocab_f38b8a4d6d.json']],
                         ids=['spiece', 'v0.1'])
def test_token_ids_equal_gluonnlp_on_emotion_sample(files, kobert_dir, shared_dir):
    paths = [str(kobert_dir / name) for name in files]
    vocab = get_vocab(*paths)
    frame = read_table(shared_dir / 'data' / 'emotion' / 'single_turn_emotion.xlsx', 'Sentence')
    texts = list(frame['Sentence'].sample(600, random_state=0)) + TRICKY

    token_ids = TokenIds(paths[0], vocab.idx_to_token)

    for max_len in (64, 512):
        expected = gluonnlp_ids(get_bert_tokenizer(paths[0], vocab), texts, max_len)
        assert [token_ids.encode(text, max_len) for text in texts] == expected


# ---------------------------------------------------------------------------- bad input

def edit_safetensors(directory, change):
    path = str(directory / 'model.safetensors')
    tensors = safetensors.numpy.load_file(path)
    change(tensors)
    safetensors.numpy.save_file(tensors, path, metadata={'format': 'pt'})


def edit_config(directory, **changes):
    path = directory / 'config.json'
    path.write_text(json.dumps({**json.loads(path.read_text(encoding='utf-8')), **changes}), encoding='utf-8')


def drop_layer(tensors):
    for name in [n for n in tensors if n.startswith('encoder.layer.1.')]:
        del tensors[name]


def misshape(tensors):
    tensors['encoder.layer.0.intermediate.dense.weight'] = np.zeros((100, 64), np.float32)


def add_extra(tensors):
    tensors['encoder.layer.7.attention.self.query.weight'] = np.zeros((64, 64), np.float32)


@pytest.mark.parametrize('change, words', [
    (drop_layer, ['missing (16)', 'encoder.layer.1.attention.self.query.weight 64x64']),
    (misshape, ['misshaped', 'encoder.layer.0.intermediate.dense.weight is 100x64, expected 128x64']),
    (add_extra, ['unexpected', 'encoder.layer.7.attention.self.query.weight 64x64']),
], ids=['missing layer', 'misshaped tensor', 'extra tensor'])
def test_tensors_that_do_not_fit_are_listed(change, words, hf_bert, tmp_path):
    shutil.copytree(hf_bert[1], tmp_path / 'hf')
    edit_safetensors(tmp_path / 'hf', change)

    with pytest.raises(ConversionError) as error:
        convert.from_transformers(tmp_path / 'hf')

    for word in words + [str(tmp_path / 'hf')]:
        assert word in str(error.value)


def test_wrong_vocab_size_is_refused(hf_classifier, tmp_path, kobert_dir):
    shutil.copytree(hf_classifier[1], tmp_path / 'hf')
    edit_config(tmp_path / 'hf', vocab_size=8000)
    edit_safetensors(tmp_path / 'hf', lambda t: t.update({'bert.embeddings.word_embeddings.weight':
                                                          t['bert.embeddings.word_embeddings.weight'][:8000]}))

    with pytest.raises(ConversionError, match='vocab_size=8000 but the tokenizer .* has 8002 tokens'):
        convert.from_transformers(tmp_path / 'hf', tmp_path / 'model', kobert_dir=kobert_dir)
    assert not os.path.exists(tmp_path / 'model')
    # Into KoBERT's 8,002-token embedding (train --init_from) it is a misshaped tensor.
    bert = build_bert(BertConfig(**{**BertConfig.small().to_dict(), 'units': 64, 'hidden_size': 128, 'num_heads': 4}),
                      use_decoder=False, use_classifier=False)
    bert.initialize()
    with pytest.raises(ConversionError, match='embeddings.word_embeddings.weight is 8000x64, expected 8002x64'):
        load_pretrained_bert(bert, str(tmp_path / 'hf'), mx.cpu())


@pytest.mark.parametrize('changes, words', [
    ({'model_type': 'roberta'}, ["model_type='roberta'", 'only BERT']),
    ({'hidden_act': 'relu'}, ["hidden_act='relu'"]),
    ({'layer_norm_eps': 1e-5}, ['layer_norm_eps=1e-05']),
], ids=['roberta', 'relu', 'layer norm eps'])
def test_configs_gluonnlp_cannot_compute_are_refused(changes, words, hf_bert, tmp_path):
    shutil.copytree(hf_bert[1], tmp_path / 'hf')
    edit_config(tmp_path / 'hf', **changes)

    with pytest.raises(ConversionError) as error:
        convert.from_transformers(tmp_path / 'hf')
    for word in words + ['config.json']:
        assert word in str(error.value)


def test_a_recorded_tokenizer_outside_the_directory_is_refused(hf_classifier, tmp_path, kobert_dir):
    shutil.copytree(hf_classifier[1], tmp_path / 'hf')
    shutil.copyfile(kobert_dir / SPIECE, tmp_path / 'outside.spiece')
    md5 = convert.md5sum(str(tmp_path / 'outside.spiece'))
    (tmp_path / 'hf' / 'kobert_gluon.json').write_text(json.dumps(
        {'tokenizer': {'tokenizer': {'file': '../../outside.spiece', 'md5': md5}}}), encoding='utf-8')

    with pytest.raises(ConversionError, match="kobert_gluon.json: tokenizer file '../../outside.spiece' is not a plain"):
        convert.from_transformers(tmp_path / 'hf', tmp_path / 'model')
    assert not os.path.exists(tmp_path / 'model')


class CreatesFileWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


@pytest.mark.parametrize('writer', ['torch.save', 'pickle'])
def test_pickle_with_code_in_a_bin_is_refused_without_running_it(writer, hf_bert, tmp_path):
    marker = tmp_path / 'pwned'
    hf_bert[0].config.save_pretrained(str(tmp_path / 'hf'))
    payload = {'embeddings.word_embeddings.weight': CreatesFileWhenUnpickled(str(marker))}
    path = tmp_path / 'hf' / 'pytorch_model.bin'
    if writer == 'torch.save':
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    # The payload is live: a plain unpickler (the old torch.load default) creates the file.
    control = tmp_path / 'control'
    torch.save({'x': CreatesFileWhenUnpickled(str(control))}, tmp_path / 'control.bin')
    torch.load(tmp_path / 'control.bin', weights_only=False)
    assert control.exists() and not marker.exists()

    with pytest.raises(ConversionError, match='pytorch_model.bin: refused'):
        convert.from_transformers(tmp_path / 'hf')
    assert not marker.exists()


def test_missing_extra_names_it(hf_bert, monkeypatch):
    monkeypatch.setitem(sys.modules, 'safetensors.numpy', None)

    with pytest.raises(MissingExtraError, match=r'kobert_gluon\[convert\]'):
        convert.from_transformers(hf_bert[1])


# ---------------------------------------------------------------------------- command line

def test_cli_converts_both_ways(hf_classifier, tmp_path, capsys, kobert_dir):
    code = cli.main(['convert', '--from-transformers', str(hf_classifier[1]), '--output', str(tmp_path / 'model'),
                     '--kobert_dir', str(kobert_dir)])
    assert code == 0 and capsys.readouterr().out.strip() == str(tmp_path / 'model')
    code = cli.main(['convert', '--to-transformers', str(tmp_path / 'model'), '--output', str(tmp_path / 'hf')])
    assert code == 0 and capsys.readouterr().out.strip() == str(tmp_path / 'hf')

    assert_same_arrays(safetensors.numpy.load_file(str(tmp_path / 'hf' / 'model.safetensors')),
                       safetensors.numpy.load_file(str(hf_classifier[1] / 'model.safetensors')))


@pytest.mark.parametrize('direction', ['--from-transformers', '--to-transformers'])
def test_cli_bad_directory_is_one_line_error(direction, tmp_path, capsys):
    (tmp_path / 'empty').mkdir()

    code = cli.main(['convert', direction, str(tmp_path / 'empty'), '--output', str(tmp_path / 'out')])

    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('kobert-gluon: error: ')]
    assert code == 2 and len(errors) == 1 and 'Traceback' not in err
    assert str(tmp_path / 'empty') in errors[0] and 'config.json' in errors[0]
    assert not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('direction', ['from', 'to'])
def test_an_unrelated_output_directory_is_not_replaced(direction, hf_bert, demo_model_dir, tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'thesis.txt').write_text('keep me', encoding='utf-8')

    with pytest.raises(ConversionError, match='refusing to replace'):
        if direction == 'from':
            convert.from_transformers(hf_bert[1], tmp_path / 'mine')
        else:
            convert.to_transformers(demo_model_dir, tmp_path / 'mine')
    assert os.listdir(tmp_path / 'mine') == ['thesis.txt']
