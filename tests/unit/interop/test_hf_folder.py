"""A --to-transformers folder is used correctly by transformers' own AutoTokenizer and pipeline().

Before tokenizer.json was written, AutoTokenizer built a WordPiece BertTokenizer from vocab.txt
and every Korean word became [UNK]: pipeline() gave other labels than kobert-gluon predict.
"""
import csv
import json
import os

import numpy as np
import pytest

CONVERT_EXTRA = 'the convert extra is not installed (bash scripts/install.sh convert)'
pytest.importorskip('safetensors', reason=CONVERT_EXTRA)
pytest.importorskip('tokenizers', reason=CONVERT_EXTRA)
torch = pytest.importorskip('torch', reason=CONVERT_EXTRA)
transformers = pytest.importorskip('transformers', reason=CONVERT_EXTRA)

pytestmark = pytest.mark.extra

from kobert_gluon import cli  # noqa: E402
from kobert_gluon.errors import ConversionError  # noqa: E402
from kobert_gluon.inference.classifier import TextClassifier  # noqa: E402
from kobert_gluon.interop import hf_tokenizer, transformers as convert  # noqa: E402

SMALL = dict(vocab_size=8002, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=128)
LABELS = ['부정', '긍정', '중립']
MAX_LEN = 32


def shared_sentences(shared_dir, count=50):
    """25 NSMC and 25 emotion sentences, long ones (cut at max_len) included."""
    with open(shared_dir / 'data' / 'nsmc' / 'ratings_test_small.txt', encoding='utf-8', newline='') as source:
        nsmc = [row['document'] for row in csv.DictReader(source, delimiter='\t', quoting=csv.QUOTE_NONE)]
    with open(shared_dir / 'data' / 'emotion' / 'single_turn_emotion_cp949.csv', encoding='cp949') as source:
        emotion = [row['Sentence'] for row in csv.DictReader(source)]
    longest = sorted(nsmc, key=len)[-5:]
    return (longest + nsmc[:count // 2 - 5] + emotion[:count // 2])[:count]


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory, kobert_dir):
    """A random 3-class classifier with KoBERT's tokenizer, as a model directory; logits spread out."""
    torch.manual_seed(3)
    config = transformers.BertConfig(**SMALL, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                                     label2id={name: i for i, name in enumerate(LABELS)})
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():  # logits centred on what the random BERT gives any text, and spread out
        ids = torch.randint(5, 8002, (64, 16))
        ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
        pooled = model.bert(ids).pooler_output
        model.classifier.weight.mul_(100)
        model.classifier.bias.copy_(-pooled.mean(0) @ model.classifier.weight.T)
    root = tmp_path_factory.mktemp('hf-folder')
    model.save_pretrained(str(root / 'hf-source'))
    convert.from_transformers(root / 'hf-source', root / 'model', kobert_dir=kobert_dir, max_len=MAX_LEN)
    return root / 'model'


@pytest.fixture(scope='module')
def hf_dir(model_dir):
    out = model_dir.parent / 'hf'
    convert.to_transformers(model_dir, out)
    return out


def test_the_folder_has_what_auto_tokenizer_needs(hf_dir):
    names = set(os.listdir(hf_dir))
    assert {'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'README.md',
            'config.json', 'model.safetensors', 'kobert_gluon.json', 'tokenizer'} <= names
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    assert tokenizer.is_fast and tokenizer.model_max_length == MAX_LEN
    assert '[UNK]' not in tokenizer.tokenize('친구가 떠나서 슬퍼')  # WordPiece on vocab.txt: three [UNK]


def test_pipeline_gives_the_labels_and_probabilities_of_predict(model_dir, hf_dir, shared_dir, tmp_path, capsys):
    texts = shared_sentences(shared_dir)
    classifier = pipeline_for(hf_dir)
    results = classifier(texts)
    inputs = tmp_path / 'texts.txt'
    inputs.write_text(''.join(text + '\n' for text in texts), encoding='utf-8')
    code = cli.main(['predict', '--model', str(model_dir), '--input', str(inputs), '--format', 'jsonl'])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(records) == len(texts) == 50
    labels = [max(result, key=lambda r: r['score'])['label'] for result in results]
    assert labels == [record['label'] for record in records]
    assert len(set(labels)) > 1
    for result, record in zip(results, records):
        scores = {r['label']: r['score'] for r in result}
        for name in LABELS:
            assert abs(scores[name] - record['probabilities'][name]) < 1e-5


def pipeline_for(hf_dir):
    return transformers.pipeline('text-classification', model=str(hf_dir), top_k=None, truncation=True)


def test_pipeline_ids_are_ours_on_the_probe_texts(model_dir, hf_dir):
    gluon = TextClassifier.load(model_dir)
    tokenizer = pipeline_for(hf_dir).tokenizer
    assert hf_tokenizer.verify_hf_tokenizer(tokenizer, gluon.tokenizer, MAX_LEN) == []


def test_model_card_of_a_run(demo_model_dir, tmp_path):
    convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    card = (tmp_path / 'hf' / 'README.md').read_text(encoding='utf-8')
    config = json.loads((demo_model_dir / 'config.json').read_text(encoding='utf-8'))
    report = json.loads((demo_model_dir.parent / 'test_report.json').read_text(encoding='utf-8'))
    for label in config['labels']:
        assert f'| {label} |' in card
    for words in ('## Base weights', '## Training data', '## Training recipe', '## Test report', '## Conversion',
                  'kobert-gluon convert --to-transformers', f'accuracy: {report["accuracy"]}', 'num_epochs',
                  "pipeline('text-classification'"):
        assert words in card, words
    assert 'Not recorded.' not in card.split('## Training record')[0]


def test_a_tokenizer_that_differs_is_refused_and_nothing_written(model_dir, tmp_path, monkeypatch):
    from tokenizers import normalizers

    build = hf_tokenizer.build_hf_tokenizer

    def without_basic_tokenizer(*args, **kwargs):
        tokenizer = build(*args, **kwargs)
        tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(' ', '\u2581'), normalizers.Prepend('\u2581')])
        return tokenizer

    monkeypatch.setattr(hf_tokenizer, 'build_hf_tokenizer', without_basic_tokenizer)
    with pytest.raises(ConversionError, match='not written: the transformers tokenizer differs'):
        convert.to_transformers(model_dir, tmp_path / 'hf')
    assert not os.path.exists(tmp_path / 'hf')
    assert not [name for name in os.listdir(tmp_path) if name.startswith('.hf')]


def test_from_transformers_reads_the_folder_back(model_dir, hf_dir, tmp_path):
    back = convert.from_transformers(hf_dir, tmp_path / 'back')
    texts = ['정말 재미있어요!!', '최악이다...', '']
    assert back.max_len == MAX_LEN and back.label_map.names == LABELS
    assert np.array_equal(back.logits(texts), TextClassifier.load(model_dir).logits(texts))
