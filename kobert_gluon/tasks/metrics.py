"""The metrics of the sequence tasks, from numpy arrays (no scikit-learn or scipy at run time):
classification (a confusion matrix), regression (Pearson, Spearman, MSE) and multi-label
(micro- and macro-F1, exact match). Each report is a dict of plain Python values (JSON)."""
import numpy as np

from .. import arguments as _arg
from ..errors import DataError


MAX_PRINTED_CLASSES = 30  # a larger confusion matrix is in the JSON reports only


def confusion_matrix(labels, predictions, num_classes):
    """Rows are true labels, columns predictions."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.size and (labels.max() >= num_classes or labels.min() < 0):
        raise DataError(f'label {labels.max()} is outside 0..{num_classes - 1} (num_classes={num_classes})')
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def classification_report(labels, predictions, num_classes):
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A class never predicted (or never present) gets precision (or recall) 0, as scikit-learn
    does with ``zero_division=0``.
    """
    _arg.integer('classification_report', 'num_classes', num_classes, minimum=1)
    labels = _arg.integers('classification_report', 'labels', labels)
    predictions = _arg.integers('classification_report', 'predictions', predictions)
    matrix = confusion_matrix(labels, predictions, num_classes)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros(num_classes), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0)
    return {'accuracy': float(true_positive.sum() / max(matrix.sum(), 1)),
            'macro_f1': float(f1.mean()),
            'precision': precision.tolist(), 'recall': recall.tolist(), 'f1': f1.tolist(),
            'support': support.tolist(), 'confusion_matrix': matrix.tolist()}


def format_report(report, label_names):
    """A plain-text per-class table for logs and the CLI."""
    width = max([len(n) for n in label_names] + [5])
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}",
             f"{'label':<{width}}  precision  recall     f1  support"]
    for i, name in enumerate(label_names):
        lines.append(f"{name:<{width}}  {report['precision'][i]:9.4f}  {report['recall'][i]:6.4f}  "
                     f"{report['f1'][i]:5.4f}  {report['support'][i]:7d}")
    size = len(report['confusion_matrix'])
    if size > MAX_PRINTED_CLASSES:  # 500 classes would print 250,000 numbers
        lines.append(f'confusion matrix: {size} x {size}, too large to print (it is in the JSON report)')
        return '\n'.join(lines)
    lines.append('confusion matrix (rows: true, columns: predicted)')
    lines.extend(' '.join(f'{v:6d}' for v in row) for row in report['confusion_matrix'])
    return '\n'.join(lines)


# ---------------------------------------------------------------------------- regression

def average_ranks(values):
    """Ranks 1..n with ties given their mean rank (what Spearman's correlation ranks by)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind='mergesort')
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        if count > 1:
            ranks[order[start:start + count]] = start + (count + 1) / 2
    return ranks


def pearson(x, y):
    """Pearson's r; 0.0 when either side is constant (no linear relation can be measured)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else 0.0


def regression_report(labels, predictions):
    """Pearson and Spearman correlation, mean squared and absolute error, of scores."""
    labels, predictions = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (labels, predictions))
    if not len(labels):
        return {'pearson': 0.0, 'spearman': 0.0, 'mse': 0.0, 'mae': 0.0, 'rows': 0}
    error = predictions - labels
    return {'pearson': pearson(labels, predictions),
            'spearman': pearson(average_ranks(labels), average_ranks(predictions)),
            'mse': float((error * error).mean()), 'mae': float(np.abs(error).mean()), 'rows': int(len(labels))}


def format_regression_report(report, label_names=None):
    return (f"Pearson {report['pearson']:.4f}  Spearman {report['spearman']:.4f}  MSE {report['mse']:.4f}  "
            f"MAE {report['mae']:.4f}  ({report['rows']} rows)")


# ---------------------------------------------------------------------------- multi-label

def _f1(true_positive, predicted, support):
    precision = np.divide(true_positive, predicted, out=np.zeros(len(true_positive)), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros(len(true_positive)), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(len(true_positive)), where=denominator > 0)
    return precision, recall, f1


def multilabel_report(labels, predictions):
    """Micro- and macro-F1, exact match and per-label precision/recall/F1/support of 0/1 matrices
    (rows x labels). A label never predicted (or never present) scores 0, as scikit-learn's
    ``zero_division=0``."""
    labels = np.asarray(labels, dtype=bool)
    predictions = np.asarray(predictions, dtype=bool)
    true_positive = (labels & predictions).sum(axis=0).astype(np.float64)
    predicted, support = predictions.sum(axis=0), labels.sum(axis=0)
    precision, recall, f1 = _f1(true_positive, predicted, support)
    _, _, micro = _f1(np.array([true_positive.sum()]), np.array([predicted.sum()]), np.array([support.sum()]))
    rows = len(labels)
    return {'micro_f1': float(micro[0]), 'macro_f1': float(f1.mean()) if len(f1) else 0.0,
            'exact_match': float((labels == predictions).all(axis=1).mean()) if rows else 0.0,
            'precision': precision.tolist(), 'recall': recall.tolist(), 'f1': f1.tolist(),
            'support': support.tolist(), 'predicted': predicted.tolist(), 'rows': int(rows)}


def format_multilabel_report(report, label_names):
    width = max([len(n) for n in label_names] + [5])
    lines = [f"micro-F1 {report['micro_f1']:.4f}  macro-F1 {report['macro_f1']:.4f}  exact match "
             f"{report['exact_match']:.4f}  ({report['rows']} rows)",
             f"{'label':<{width}}  precision  recall     f1  support"]
    for i, name in enumerate(label_names):
        lines.append(f"{name:<{width}}  {report['precision'][i]:9.4f}  {report['recall'][i]:6.4f}  "
                     f"{report['f1'][i]:5.4f}  {report['support'][i]:7d}")
    return '\n'.join(lines)
