"""Labels a reader sees as one label are one class (kobert_gluon/text/labels.py, issue 29 finding 1).
The expected keys are built independently: unicodedata's NFC/NFD, int() of ASCII digits."""
import logging
import unicodedata

import pandas as pd
import pytest

from kobert_gluon.errors import DataError
from kobert_gluon.tasks import registry
from kobert_gluon.tasks.inputs import Columns
from kobert_gluon.text.data import LabelMap
from kobert_gluon.text.labels import check_label_column, label_key

CLASSIFICATION, MULTI_LABEL = registry.get('classification'), registry.get('multi_label')
NFC, NFD = unicodedata.normalize('NFC', '긍정'), unicodedata.normalize('NFD', '긍정')
INVISIBLE = ['\u200b', '\u200c', '\u200d', '\ufeff', '\u00ad', '\u2060']


def read(labels, task=CLASSIFICATION):
    frame = pd.DataFrame({'text': [f'문장 {i}' for i in range(len(labels))], 'label': labels})
    return task.read_labels(frame, Columns(), 'data.tsv')


@pytest.mark.parametrize('word', ['긍정', '부정', '매우 좋음', '혐오'])
def test_nfd_hangul_and_invisible_characters_are_the_same_label(word):
    nfc = unicodedata.normalize('NFC', word)
    variants = [unicodedata.normalize('NFD', word), f' {word}\t'] + [word + char for char in INVISIBLE] + \
        [char + word for char in INVISIBLE]
    keys = read([nfc, *variants, '다른'])
    assert set(keys) == {nfc, '다른'} and keys.count(nfc) == len(variants) + 1
    assert LabelMap.from_values(keys).names == sorted({nfc, '다른'})


@pytest.mark.parametrize('spellings, number', [
    (['1', '１', '01', '001', '+1', '1.0', '1e0', '1.00'], 1),
    (['0', '-0', '０', '00', '0.0'], 0),
    (['1000', '1_000', '１０００', '1000.0', '1e3'], 1000),
    (['12', '١٢', '१२', '１２', '12.', '12.0e0'], 12),  # Arabic-Indic, Devanagari, full-width decimal digits
    (['-3', '－3', '−3', '－３', '-3.'], -3),  # full-width and typographic minus signs
])
def test_numbers_have_one_spelling(spellings, number):
    keys = read(spellings + ['5'])
    assert keys == [str(number)] * len(spellings) + ['5']


def test_decimal_classes_keep_their_value():
    assert read(['0.5', '0.50', '.5', '1.5', '1.50']) == ['0.5', '0.5', '0.5', '1.5', '1.5']


def test_merged_spellings_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger='kobert_gluon'):
        read([NFC, NFD, '부정', '부정'])
    merged = [record.getMessage() for record in caplog.records if 'read as' in record.getMessage()]
    assert len(merged) == 1 and repr(NFC) in merged[0] and '2 rows' in merged[0]


def test_normal_labels_keep_their_keys_and_log_nothing(caplog):
    with caplog.at_level(logging.INFO, logger='kobert_gluon'):
        assert read(['긍정', '부정', '긍정']) == ['긍정', '부정', '긍정']
        assert read(['0', '1', '2', '10']) == ['0', '1', '2', '10']
    assert not [r for r in caplog.records if 'read as' in r.getMessage()]
    assert LabelMap.from_values(['10', '2', '0']).names == ['0', '2', '10']


@pytest.mark.parametrize('odd', ['nan', 'NaN', 'inf', '-inf', '²', '½', 'Ⅳ', '1²', 'N/A'])
def test_a_non_number_among_numbers_is_refused_naming_its_row(odd):
    with pytest.raises(DataError, match=rf"data.tsv: column 'label': label '{odd}' \(row\(s\) 3\) is not a number"):
        read(['0', '1', odd, '1'])


def test_superscripts_alone_are_names_not_an_internal_error():
    assert LabelMap.from_values(read(['²', '³', '²'])).names == ['²', '³']


@pytest.mark.parametrize('first, second', [('Pos', 'pos'), ('A', 'Ａ'), ('매우 좋음', '매우  좋음'), ('ok', 'OK')])
def test_labels_differing_only_in_case_width_or_spacing_are_refused_naming_both(first, second):
    with pytest.raises(DataError, match=r"labels .* \(row\(s\) [12]\) and .* \(row\(s\) [12]\) differ only in case"):
        read([first, second, 'other'])


def test_multi_label_items_are_normalised_too():
    labels = read([f'{NFD},부정', NFC, f'부정\u200b'], MULTI_LABEL)
    assert labels == [{NFC, '부정'}, {NFC}, {'부정'}]


def test_label_key_of_python_values():
    import numpy as np
    assert [label_key(v) for v in (1, np.int64(1), 1.0, np.float32(2.0), ' 3 ', '２')] == ['1', '1', '1', '2', '3', '2']
    assert check_label_column(['a', 'b'], 's', 'label') == ['a', 'b']
