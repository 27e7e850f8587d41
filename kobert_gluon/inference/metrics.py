"""Classification metrics from a confusion matrix (no scikit-learn at run time)."""
import numpy as np

from ..errors import DataError


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
    lines.append('confusion matrix (rows: true, columns: predicted)')
    lines.extend(' '.join(f'{v:6d}' for v in row) for row in report['confusion_matrix'])
    return '\n'.join(lines)
