"""A model directory written by kobert_gluon 0.5.0 (before the package was reorganised into
subpackages) loads with today's code and predicts exactly what 0.5.0 predicted.

tests/fixtures/model_dir_v0.5.0/ was made once by the 0.5.0 code: a 1-layer, 16-unit
classifier (random weights, seed 7) with a 300-piece tokenizer, plus the records and token ids
0.5.0's ``predict_records`` and ``encode`` gave for four texts (expected.json)."""
import json
import os

import numpy as np

from kobert_gluon.inference.classifier import TextClassifier

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       'fixtures', 'model_dir_v0.5.0')


def test_a_model_directory_saved_by_0_5_0_loads_and_predicts_the_same():
    with open(os.path.join(FIXTURE, 'expected.json'), encoding='utf-8') as source:
        expected = json.load(source)
    assert expected['made_by'] == 'kobert_gluon 0.5.0'
    classifier = TextClassifier.load(os.path.join(FIXTURE, 'model'))
    assert [list(map(int, classifier.encode([text])[0][0])) for text in expected['texts']] == expected['token_ids']
    records = classifier.predict_records(expected['texts'])
    for got, want in zip(records, expected['records']):
        assert got['text'] == want['text'] and got['label'] == want['label']
        if want['probabilities'] is None:
            assert got['probabilities'] is None
        else:
            np.testing.assert_allclose([got['probabilities'][k] for k in sorted(want['probabilities'])],
                                       [want['probabilities'][k] for k in sorted(want['probabilities'])], atol=1e-6)
