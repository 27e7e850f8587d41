"""The task metrics against scikit-learn and scipy, computed independently on the same rows."""
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from kobert_gluon.tasks.metrics import average_ranks, classification_report, multilabel_report, regression_report


@pytest.mark.parametrize('seed', range(5))
def test_regression_report_equals_scipy_and_sklearn(seed):
    rng = np.random.RandomState(seed)
    gold = np.round(rng.uniform(0, 5, 300), 1)  # KorSTS-like scores, with many ties
    predicted = gold + rng.normal(0, 1, 300)
    if seed == 0:
        predicted = np.round(predicted)  # ties on both sides
    report = regression_report(gold, predicted)
    assert report['pearson'] == pytest.approx(stats.pearsonr(gold, predicted)[0], abs=1e-12)
    assert report['spearman'] == pytest.approx(stats.spearmanr(gold, predicted)[0], abs=1e-12)
    assert report['mse'] == pytest.approx(sk.mean_squared_error(gold, predicted), abs=1e-12)
    assert report['mae'] == pytest.approx(sk.mean_absolute_error(gold, predicted), abs=1e-12)
    assert report['rows'] == 300


def test_average_ranks_equal_scipys_rankdata():
    values = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    np.testing.assert_array_equal(average_ranks(values), stats.rankdata(values))


def test_constant_predictions_have_no_correlation_instead_of_nan():
    report = regression_report([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert report['pearson'] == 0.0 and report['spearman'] == 0.0
    assert report['mse'] == pytest.approx(2 / 3)


@pytest.mark.parametrize('seed', range(5))
def test_multilabel_report_equals_sklearn(seed):
    rng = np.random.RandomState(seed)
    gold = rng.rand(200, 7) < 0.25
    predicted = rng.rand(200, 7) < 0.3
    gold[:, 6] = False  # a label never present
    predicted[:, 5] = False  # and one never predicted
    report = multilabel_report(gold, predicted)
    assert report['micro_f1'] == pytest.approx(sk.f1_score(gold, predicted, average='micro', zero_division=0))
    assert report['macro_f1'] == pytest.approx(sk.f1_score(gold, predicted, average='macro', zero_division=0))
    assert report['exact_match'] == pytest.approx(sk.accuracy_score(gold, predicted))  # subset accuracy
    precision, recall, f1, support = sk.precision_recall_fscore_support(gold, predicted, zero_division=0)
    np.testing.assert_allclose(report['precision'], precision)
    np.testing.assert_allclose(report['recall'], recall)
    np.testing.assert_allclose(report['f1'], f1)
    assert report['support'] == support.tolist()


def test_classification_report_equals_sklearn():
    rng = np.random.RandomState(3)
    gold, predicted = rng.randint(0, 4, 120), rng.randint(0, 4, 120)
    report = classification_report(gold, predicted, 4)
    assert report['accuracy'] == pytest.approx(sk.accuracy_score(gold, predicted))
    assert report['macro_f1'] == pytest.approx(sk.f1_score(gold, predicted, average='macro'))
    assert report['confusion_matrix'] == sk.confusion_matrix(gold, predicted).tolist()
