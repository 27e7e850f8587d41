"""How each sequence task reads, names and encodes labels, and the one-line errors for labels
that belong to another task."""
import numpy as np
import pandas as pd
import pytest

from kobert_gluon.errors import DataError
from kobert_gluon.tasks import registry
from kobert_gluon.tasks.inputs import Columns

CLASSIFICATION, REGRESSION, MULTI_LABEL = (registry.get(name) for name in ('classification', 'regression',
                                                                            'multi_label'))


def frame(labels, column='label'):
    return pd.DataFrame({'text': [f'문장 {i}' for i in range(len(labels))], column: labels})


def test_regression_reads_scores_and_names_the_row_of_one_that_is_not():
    labels = REGRESSION.read_labels(frame(['3.8', '0', ' 4.25 ', '5']), Columns(), 'sts.tsv')
    assert labels == [3.8, 0.0, 4.25, 5.0]
    np.testing.assert_array_equal(REGRESSION.encode_labels(['label'], labels, 's'), np.float32(labels))
    for bad in ('높음', 'nan', 'inf', None):
        with pytest.raises(DataError, match=r"sts.tsv: row 2, column 'label': label .* is not a number.*regression"):
            REGRESSION.read_labels(frame(['1.5', bad]), Columns(), 'sts.tsv')


def test_multi_label_reads_separated_lists_in_sorted_numeric_order():
    labels = MULTI_LABEL.read_labels(frame(['0,6,10', '2', '10, 2', '6']), Columns(), 'kote.tsv')
    assert labels == [{'0', '6', '10'}, {'2'}, {'2', '10'}, {'6'}]
    names = MULTI_LABEL.label_names(labels, Columns())
    assert names == ['0', '2', '6', '10']
    np.testing.assert_array_equal(MULTI_LABEL.encode_labels(names, labels, 'k'),
                                  [[1, 0, 1, 1], [0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]])
    semicolons = MULTI_LABEL.read_labels(frame(['기쁨;슬픔', '슬픔']), Columns(label_separator=';'), 'x')
    assert semicolons == [{'기쁨', '슬픔'}, {'슬픔'}]
    with pytest.raises(DataError, match=r"test.tsv: row 2: unknown label\(s\) \['7'\]; the training rows have '0', "):
        MULTI_LABEL.encode_labels(names, [{'0'}, {'7', '2'}], 'test.tsv')


def test_multi_label_reads_zero_one_columns_in_their_given_order():
    table = pd.DataFrame({'text': ['a', 'b', 'c'], '분노': ['1', '0', ''], '기쁨': ['0', '1.0', '1']})
    columns = Columns(label_columns=('분노', '기쁨'))
    labels = MULTI_LABEL.read_labels(table, columns, 'x.tsv')
    assert labels == [{'분노'}, {'기쁨'}, {'기쁨'}]
    assert MULTI_LABEL.label_names(labels, columns) == ['분노', '기쁨']
    table.loc[1, '분노'] = '2'
    with pytest.raises(DataError, match=r"x.tsv: row 2, column '분노': '2' is not 0 or 1"):
        MULTI_LABEL.read_labels(table, columns, 'x.tsv')


def test_classification_refuses_scores_and_lists_naming_the_task_they_belong_to():
    scores = [f'{value:.1f}' for value in np.linspace(0, 5, 40)]
    with pytest.raises(DataError, match=r"column 'label' holds 40 distinct numbers.*--task regression"):
        CLASSIFICATION.read_labels(frame(scores), Columns(), 'sts.tsv')
    lists = ['0,6', '2', '1,3', '4,5,6', '2']
    with pytest.raises(DataError, match=r"3 of 5 labels in column 'label' are ','-separated lists \(row 1: '0,6'\).*--task multi_label"):
        CLASSIFICATION.read_labels(frame(lists), Columns(), 'kote.tsv')
    # what stays classification: integer classes, a few decimal classes, names with a comma now and then
    assert CLASSIFICATION.read_labels(frame(['0', '1', '1.0', '2']), Columns(), 'x') == ['0', '1', '1', '2']  # keys
    assert len(CLASSIFICATION.read_labels(frame(['0.5', '1.5', '2.5'] * 3), Columns(), 'x')) == 9
    names = ['긍정', '부정'] * 10 + ['예, 아니오']
    assert CLASSIFICATION.read_labels(frame(names), Columns(), 'x') == names


def test_predictions_and_hf_answers_of_each_task():
    names = ['a', 'b', 'c']
    probabilities = np.array([0.2, 0.7, 0.1], dtype=np.float32)
    assert CLASSIFICATION.prediction(probabilities, names, {})['label'] == 'b'
    answer = CLASSIFICATION.hf_answer(CLASSIFICATION.prediction(probabilities, names, {}), names, top_k=2)
    assert [entry['label'] for entry in answer] == ['b', 'a']
    sigmoid = MULTI_LABEL.probabilities(np.array([[0.0, 2.0, -2.0]]))[0]
    prediction = MULTI_LABEL.prediction(sigmoid, names, {'threshold': 0.4})
    assert prediction['labels'] == ['a', 'b'] and prediction['probabilities']['a'] == pytest.approx(0.5)
    assert MULTI_LABEL.adjusted(prediction, names, {'threshold': 0.6})['labels'] == ['b']
    assert MULTI_LABEL.table_columns(prediction, names)['labels'] == 'a,b'
    score = REGRESSION.prediction(REGRESSION.probabilities(np.array([[3.25]]))[0], ['score'], {})
    assert score == {'score': 3.25}
    assert REGRESSION.hf_answer(score, ['score']) == [{'label': 'score', 'score': 3.25}]
