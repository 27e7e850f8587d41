"""A tagger exported and converted: the MXNet graph and the ONNX file give its per-piece logits,
``convert --to-transformers`` writes a BertForTokenClassification whose pipeline('token-
classification', aggregation_strategy='simple') finds predict's entities (the one placement
difference counted: the pipeline's start on the space before a word), ``--from-transformers``
reads it back."""
import json
import warnings

import mxnet as mx
import numpy as np
import pytest

from kobert_gluon import cli
from kobert_gluon.inference.classifier import EntityTagger, TextClassifier
from kobert_gluon.inference.export import export, input_names

from helpers import entity_rows

TEXTS = ['김민수씨는 어제 서울에서 3명을 만났다.', '  오늘 박철수가 부산으로 떠났다.', '짧다']


def real(outputs, batch):
    return np.concatenate([row[:int(n)] for row, n in zip(outputs, batch.valid_length)])


def test_the_mxnet_export_gives_the_per_piece_logits(ner_run, tmp_path):
    classifier = ner_run[0]
    paths = export(classifier, tmp_path / 'mx')
    manifest = json.loads(open(paths['manifest'], encoding='utf-8').read())
    assert manifest['task'] == 'token_classification' and manifest['output']['shape'][:2] == ['batch', 'length']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net = mx.gluon.SymbolBlock.imports(paths['symbol'], input_names(), paths['params'])
    batch = next(classifier.batches(classifier.encode(TEXTS), len(TEXTS)))
    outputs = net(*(mx.nd.array(a, dtype='int32') for a in batch)).asnumpy()
    assert outputs.shape == (3, batch.token_ids.shape[1], len(classifier.label_map.names))
    np.testing.assert_allclose(real(outputs, batch), real(classifier.forward(batch), batch), atol=1e-4)


def test_the_onnx_export_gives_the_per_piece_logits(ner_run, tmp_path):
    pytest.importorskip('onnxruntime', reason='the onnx extra is not installed')
    pytest.importorskip('torch', reason='the convert extra is not installed')
    import onnxruntime
    from kobert_gluon.interop.onnx import ONNX_OUTPUT, export_onnx, onnx_inputs

    classifier = ner_run[0]
    paths = export_onnx(classifier, tmp_path / 'onnx')
    batch = next(classifier.batches(classifier.encode(TEXTS), len(TEXTS)))
    session = onnxruntime.InferenceSession(paths['onnx'], providers=['CPUExecutionProvider'])
    outputs = session.run([ONNX_OUTPUT], onnx_inputs(*batch))[0]
    np.testing.assert_allclose(real(outputs, batch), real(classifier.forward(batch), batch), atol=1e-4)


def placement_differences(text, ours, theirs):
    """How the pipeline's entities differ from ours: 'same', or 'space before' where only its
    start is one less and on whitespace (docs/ner.md); anything else is returned as is."""
    key = [(e['entity_group'], e['end']) for e in ours]
    if key != [(e['entity_group'], e['end']) for e in theirs]:
        return ['different entities']
    kinds = []
    for mine, other in zip(ours, theirs):
        assert other['score'] == pytest.approx(mine['score'], abs=1e-4)
        if other['start'] == mine['start']:
            kinds.append('same')
        elif other['start'] == mine['start'] - 1 and not text[other['start']].strip():
            kinds.append('space before')
        else:
            kinds.append(('other', text, mine, other))
    return kinds


def test_to_transformers_writes_a_token_classifier_whose_pipeline_finds_predicts_entities(ner_run, tmp_path,
                                                                                           capsys):
    transformers = pytest.importorskip('transformers', reason='the convert extra is not installed')
    classifier, run_dir, _ = ner_run
    hf_dir = tmp_path / 'hf'
    assert cli.main(['convert', '--to-transformers', str(run_dir / 'best'), '--output', str(hf_dir)]) == 0
    config = json.loads((hf_dir / 'config.json').read_text(encoding='utf-8'))
    names = classifier.label_map.names
    assert config['architectures'] == ['BertForTokenClassification']
    assert config['id2label'] == {str(i): name for i, name in enumerate(names)}
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(hf_dir))
    assert model.config.num_labels == len(names)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    pipe = transformers.pipeline('token-classification', model=model, tokenizer=tokenizer,
                                 aggregation_strategy='simple')
    texts = [r['text'] for r in entity_rows(30, seed=11)] + TEXTS
    kinds = []
    for text, ours in zip(texts, classifier.predict(texts)):
        kinds += placement_differences(text, ours, pipe(text))
    assert kinds and all(kind in ('same', 'space before') for kind in kinds), kinds
    assert 'space before' in kinds
    card = (hf_dir / 'README.md').read_text(encoding='utf-8')
    assert "pipeline('token-classification', model='THIS_FOLDER', aggregation_strategy='simple')" in card
    capsys.readouterr()
    back = tmp_path / 'back'
    assert cli.main(['convert', '--from-transformers', str(hf_dir), '--output', str(back)]) == 0
    again = TextClassifier.load(str(back))
    assert isinstance(again, EntityTagger) and again.task_settings == classifier.task_settings
    assert again.label_map.names == names and again.max_len == classifier.max_len
    assert again.predict(texts) == classifier.predict(texts)
