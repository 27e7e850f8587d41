"""Every public function of ``kg.`` checks its arguments: a wrong type is a KobertGluonError that
names the argument, never a traceback from pandas, numpy or MXNet (issue 29, finding 4)."""
import inspect

import numpy as np
import pandas as pd
import pytest

import kobert_gluon as kg
from kobert_gluon.errors import KobertGluonError


class Wrong:
    """An argument of no type any function accepts."""

    def __repr__(self):
        return '<wrong>'


CALLABLES = [name for name in kg._LAZY if callable(getattr(kg, name)) and not inspect.isclass(getattr(kg, name))
             or name in ('BERTDataset', 'LabelMap', 'TextClassifier', 'TokenIds', 'BERTClassifier')]


def calls(name):
    """Wrong arguments for ``kg.<name>``: every required argument wrong at once, and (where none is
    required) each optional one in turn."""
    parameters = [p for p in inspect.signature(getattr(kg, name)).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = {p.name: Wrong() for p in parameters if p.default is p.empty}
    if required:
        return [required]
    return [{p.name: Wrong()} for p in parameters]


@pytest.mark.parametrize('name', CALLABLES)
def test_a_wrong_argument_is_an_error_naming_it(name):
    function = getattr(kg, name)
    for kwargs in calls(name):
        with pytest.raises(KobertGluonError) as caught:
            function(**kwargs)
        assert any(f'{argument}=' in str(caught.value) for argument in kwargs), (kwargs, str(caught.value))


# ---------------------------------------------------------------------------- the cases of issue 29

def test_label_map_decode_refuses_ids_out_of_range_and_negative_ones():
    labels = kg.LabelMap(['긍정', '부정'])
    assert labels.decode([0, 1, np.int64(1), 1.0]) == ['긍정', '부정', '부정', '부정']
    assert labels.decode(np.array([1, 0])) == ['부정', '긍정']
    for ids, bad in (([0, 2], 'ids[1]=2'), ([-1], 'ids[0]=-1'), (['0'], "ids[0]='0'"), ([0.5], 'ids[0]=0.5')):
        with pytest.raises(kg.ConfigError, match=rf'LabelMap.decode: {bad!s}.* from 0 to 1'.replace('[', r'\[').replace(']', r'\]')):
            labels.decode(ids)
    with pytest.raises(kg.ConfigError, match='ids=1 must be a list'):
        labels.decode(1)


@pytest.mark.parametrize('content', ['["긍정", "부정"]', '{"긍정": "0"}', '{"긍정": 0, "부정": 2}', '3'])
def test_label_map_load_of_anything_but_a_label_map_names_the_file(tmp_path, content):
    path = tmp_path / 'labels.json'
    path.write_text(content, encoding='utf-8')
    with pytest.raises(kg.DataError, match='labels.json: not a label map'):
        kg.LabelMap.load(path)


def test_stratified_split_checks_each_argument():
    frame = pd.DataFrame({'text': list('abcdefghij'), 'label': ['x', 'y'] * 5})
    for kwargs, named in (({'label_column': 'nope'}, 'label_column'), ({'test_size': '0.2'}, 'test_size'),
                          ({'test_size': 1.5}, 'test_size'), ({'seed': -1}, 'seed'), ({'seed': 1.5}, 'seed')):
        with pytest.raises(kg.ConfigError, match=f'stratified_split: {named}='):
            kg.stratified_split(frame, **{'label_column': 'label', **kwargs})
    train, test = kg.stratified_split(frame, 'label', np.float64(0.2), np.int64(3))
    assert len(train) == 8 and len(test) == 2


@pytest.fixture(scope='module')
def tokenizer(kobert_dir):
    return kg.get_bert_tokenizer(kg.get_tokenizer_path(kobert_dir=str(kobert_dir), download=False),
                                 kg.get_vocab(kobert_dir=str(kobert_dir)))


@pytest.mark.parametrize('dataset, sent_idx, pair, named', [
    ([['문장 하나', '문장 둘', 0]], 0, True, 'sent_idx=0'),
    (['문장 하나', '문장 둘'], 0, False, 'row 0 is str'),
    ((row for row in [['문장', 0]]), 0, False, 'dataset='),
    ({'문장': 0}, 0, False, 'dataset='),
    ('문장', 0, False, 'dataset='),
    ([['문장', 0]], [0, 1], False, 'sent_idx=[0, 1]'),
])
def test_bert_dataset_refuses_arguments_it_would_misread(tokenizer, dataset, sent_idx, pair, named):
    with pytest.raises(KobertGluonError, match=named.replace('[', r'\[').replace(']', r'\]')):
        kg.BERTDataset(dataset, sent_idx, 1 if not pair else 2, tokenizer, 16, True, pair)


def test_bert_dataset_refuses_no_tokenizer_and_labels_past_int32(tokenizer):
    with pytest.raises(kg.ConfigError, match='bert_tokenizer=None'):
        kg.BERTDataset([['문장', 0]], 0, 1, None, 16, True, False)
    with pytest.raises(kg.DataError, match='row 1, column 1: label 2147483648 does not fit the int32'):
        kg.BERTDataset([['문장', 0], ['문장', 2 ** 31]], 0, 1, tokenizer, 16, True, False)
    assert int(kg.BERTDataset([['문장', 2 ** 31 - 1]], 0, 1, tokenizer, 16, True, False)[0][3]) == 2 ** 31 - 1


def test_predict_takes_numpy_strings_and_a_numpy_batch_size(demo_classifier):
    texts = ['배송이 빨라서 좋았어요', '최악이에요']
    expected = demo_classifier.predict(texts)
    assert demo_classifier.predict(np.array(texts), batch_size=np.int64(1)) == expected
    assert demo_classifier.predict([np.str_(text) for text in texts], batch_size=np.int32(2)) == expected
    for bad in (np.float64(2.0), True, 0, '2'):
        with pytest.raises(kg.ConfigError, match='batch_size='):
            demo_classifier.predict(texts, batch_size=bad)


def test_int8_without_calibration_texts_names_the_argument(demo_classifier):
    for missing in (None, [], np.array([], dtype=str)):
        with pytest.raises(kg.ConfigError, match="dtype='int8' needs calibration_texts"):
            demo_classifier.with_precision('int8', missing)
