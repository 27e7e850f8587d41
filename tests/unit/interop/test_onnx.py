"""kobert-gluon export --format onnx, the onnxruntime snippet of docs/interop.md, and SKT's
kobert.onnx_kobert (get_onnx_kobert_model, make_dummy_input)."""
import json
import pathlib
import re
import sys

import numpy as np
import pytest

ONNX_EXTRA = 'the onnx extra is not installed (pip install "kobert_gluon[onnx]")'
pytest.importorskip('onnx', reason=ONNX_EXTRA)
ort = pytest.importorskip('onnxruntime', reason=ONNX_EXTRA)
torch = pytest.importorskip('torch', reason=ONNX_EXTRA)
transformers = pytest.importorskip('transformers', reason=ONNX_EXTRA)
pytest.importorskip('tokenizers', reason=ONNX_EXTRA)

pytestmark = pytest.mark.extra

import mxnet as mx  # noqa: E402

from kobert_gluon import cli  # noqa: E402
from kobert_gluon.errors import AssetError, MissingExtraError  # noqa: E402
from kobert_gluon.inference.classifier import TextClassifier  # noqa: E402
from kobert_gluon.interop import onnx as onnx_export  # noqa: E402
from kobert_gluon.interop import transformers as convert  # noqa: E402
from kobert_gluon.models.config import BertConfig  # noqa: E402

from helpers import save_random_bert

DOCS = pathlib.Path(__file__).resolve().parents[3] / 'docs' / 'interop.md'
SMALL = dict(vocab_size=8002, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=128)
SMALL_GLUON = BertConfig(num_layers=2, units=64, hidden_size=128, num_heads=4, max_length=128)
TEXTS = ['배송이 빨라서 너무 좋았어요', '다시는 안 삽니다', '그냥 그래요!', '정말 최고의 영화였습니다 ' * 30, '',
         '😀👍🏻 ＡＢＣ！ 漢字 café [CLS]']
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory, kobert_dir):
    torch.manual_seed(4)
    config = transformers.BertConfig(**SMALL, num_labels=3, id2label={0: '부정', 1: '긍정', 2: '중립'},
                                     label2id={'부정': 0, '긍정': 1, '중립': 2})
    root = tmp_path_factory.mktemp('onnx')
    transformers.BertForSequenceClassification(config).save_pretrained(str(root / 'hf'))
    convert.from_transformers(root / 'hf', root / 'model', kobert_dir=kobert_dir, max_len=48)
    return root / 'model'


@pytest.fixture(scope='module')
def onnx_dir(model_dir):
    out = model_dir.parent / 'model-onnx'
    assert cli.main(['export', '--format', 'onnx', '--model', str(model_dir), '--output', str(out)]) == 0
    return out


def test_onnxruntime_gives_the_logits_of_kobert_gluon(model_dir, onnx_dir):
    classifier = TextClassifier.load(model_dir)
    encoded = classifier.encode(TEXTS)
    batch = next(classifier.batches(encoded, batch_size=len(TEXTS)))
    session = ort.InferenceSession(str(onnx_dir / 'model.onnx'), providers=['CPUExecutionProvider'])
    logits = session.run(['logits'], onnx_export.onnx_inputs(*batch))[0]
    assert np.abs(logits - classifier.logits(TEXTS)).max() < TOLERANCE
    manifest = json.loads((onnx_dir / 'export.json').read_text(encoding='utf-8'))
    assert manifest['format'] == 'kobert_gluon.export.onnx' and manifest['onnx'] == 'model.onnx'
    assert [entry['name'] for entry in manifest['inputs']] == ['input_ids', 'token_type_ids', 'attention_mask']
    assert manifest['labels'] == classifier.label_map.names and manifest['tokenizer_json'] == 'tokenizer.json'


def doc_snippet():
    text = DOCS.read_text(encoding='utf-8')
    match = re.search(r'<!-- onnx-snippet[^>]*-->\s*```python\n(.*?)```', text, re.S)
    assert match, 'docs/interop.md lost its onnx snippet'
    return match.group(1)


def test_the_documented_snippet_serves_the_export(model_dir, onnx_dir, monkeypatch):
    code = doc_snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 12
    monkeypatch.chdir(onnx_dir.parent)
    code = code.replace("'demo-onnx/", f"'{onnx_dir.name}/")
    code = code.replace("['배송이 빨라서 너무 좋았어요', '다시는 안 삽니다']", repr(TEXTS))
    namespace = {}
    exec(compile(code, str(DOCS), 'exec'), namespace)  # noqa: S102  (our own documentation)
    assert namespace['labels'] == TextClassifier.load(model_dir).predict(TEXTS)


def test_without_onnxruntime_the_extra_is_named(model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(MissingExtraError, match=r'kobert_gluon\[onnx\]'):
        onnx_export.export_onnx(model_dir, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------------------- kobert.onnx_kobert

@pytest.fixture(scope='module')
def small_params(tmp_path_factory):
    """Gluon weights in the bert_12_768_12 layout at a small size, KoBERT's vocab (8,002)."""
    return save_random_bert(SMALL_GLUON, tmp_path_factory.mktemp('small-bert') / 'small.params')


def test_make_dummy_input_is_skts():
    from kobert.onnx_kobert import make_dummy_input

    input_ids, token_type_ids, input_mask, position_ids = make_dummy_input(max_seq_len=5)
    assert input_ids == [[31, 51, 99, 1, 1], [15, 5, 1, 1, 1]]
    assert token_type_ids == [[0] * 5, [0] * 5]
    assert input_mask == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert position_ids == [0, 1, 2, 3, 4]


def test_get_onnx_kobert_model_from_own_weights_runs_skts_dummy_input(small_params, kobert_dir, tmp_path):
    from kobert import get_mxnet_kobert_model
    from kobert.onnx_kobert import get_onnx_kobert_model, make_dummy_input

    path = get_onnx_kobert_model(cachedir=str(tmp_path), model_file=str(small_params), kobert_dir=str(kobert_dir),
                                 config=SMALL_GLUON)
    assert path.endswith('.onnx') and pathlib.Path(path).parent == tmp_path
    dummy = make_dummy_input(max_seq_len=16)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    sequence, pooled = session.run(None, {name: np.array(value) for name, value in
                                          zip(('input_ids', 'token_type_ids', 'input_mask', 'position_ids'), dummy)})
    bert, _ = get_mxnet_kobert_model(use_decoder=False, use_classifier=False, model_file=str(small_params),
                                     kobert_dir=str(kobert_dir), config=SMALL_GLUON)
    ids = np.array(dummy[0])
    _, expected = bert(mx.nd.array(ids), mx.nd.array(dummy[1]), mx.nd.array(np.array(dummy[2]).sum(axis=1)))
    assert sequence.shape == (2, 16, 64) and np.abs(pooled - expected.asnumpy()).max() < TOLERANCE


def test_get_onnx_kobert_model_offline_says_what_to_do(tmp_path):
    from kobert.onnx_kobert import get_onnx_kobert_model
    from kobert.utils import get_onnx

    for call in (lambda: get_onnx_kobert_model(cachedir=str(tmp_path)), lambda: get_onnx(str(tmp_path))):
        with pytest.raises(AssetError, match=r'kobert\.onnx1\.8\.0\.onnx.*get_onnx_kobert_model\(model_file='):
            call()
