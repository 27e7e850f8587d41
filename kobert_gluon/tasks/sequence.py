"""The sequence tasks: one output vector per input (a sentence or a sentence pair), read from the
pooled [CLS] output by KoBERT's notebook head (``BERTClassifier``), as transformers'
``BertForSequenceClassification`` does for its three ``problem_type`` settings:

- ``classification``: one label of several (softmax, cross-entropy), the notebooks' task;
- ``regression``: a score (one output, L2 loss as gluonnlp's STS-B recipe), Pearson/Spearman;
- ``multi_label``: any number of labels (one sigmoid each, binary cross-entropy), micro/macro-F1.
"""
import math
import numbers
from typing import Dict, List, Optional

import numpy as np
from mxnet import gluon

from ..errors import ConfigError, DataError
from ..models.heads import build_classifier
from ..text.data import LabelMap, is_missing, label_key
from ..text.labels import check_label_column
from .metrics import (classification_report, format_multilabel_report, format_regression_report, format_report,
                      multilabel_report, regression_report)
from .registry import Task, register

# A classification label column refused as what it more likely is: non-integer numbers with more
# distinct values than this are scores (--task regression) ...
MAX_SCORE_CLASSES = 10
# ... and a column where more than this share of the labels are separated lists holds several
# labels per row (--task multi_label).
LIST_SHARE = 0.1


def sigmoid(logits):
    return 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))


class SequenceTask(Task):
    """What the three sequence tasks share: the head, one label column, the loader's targets."""

    def build_model(self, bert_config, num_outputs, dropout, ctx, bert_params=None):
        return build_classifier(bert_config, num_outputs, dropout, ctx, bert_params)

    def read_labels(self, frame, columns, source):
        return [self.read_label(value, row, columns, source)
                for row, value in enumerate(frame[columns.label], start=1)]

    def read_label(self, value, row, columns, source):
        return value

    def blank_prediction(self, label_names):
        return {name: None for name in self.prediction_fields}


# ---------------------------------------------------------------------------- classification

class Classification(SequenceTask):
    name = 'classification'
    aliases = ('text_classification',)
    description = 'one label of several per text (softmax, cross-entropy)'
    hf_problem_type = 'single_label_classification'
    select_metrics = ('accuracy', 'macro_f1')
    summary_metrics = ('accuracy', 'macro_f1')
    running_metric = 'accuracy'
    prediction_fields = ('label', 'probabilities')
    min_labels = 2

    def read_labels(self, frame, columns, source):
        labels = check_label_column(super().read_labels(frame, columns, source), source, columns.label)
        refuse_scores(labels, columns, source)
        refuse_lists(labels, columns, source)
        return labels

    def label_names(self, raw_labels, columns):
        return LabelMap.from_values(raw_labels).names

    def encode_labels(self, label_names, raw_labels, source):
        return LabelMap(label_names).encode(raw_labels, source)

    def label_text(self, raw_label):
        return label_key(raw_label)

    def unknown_labels(self, label_names, raw_labels):
        return sorted({label_key(value) for value in raw_labels} - set(label_names))

    def split_keys(self, raw_labels):
        return [label_key(value) for value in raw_labels]

    def loss(self):
        return gluon.loss.SoftmaxCELoss()

    def collect(self, outputs, labels):
        return {'labels': np.asarray(labels, dtype=np.int64).reshape(-1),
                'predictions': np.asarray(outputs).argmax(axis=1).astype(np.int64)}

    def running(self, outputs, labels):
        return int((np.asarray(outputs).argmax(axis=1) == np.asarray(labels).reshape(-1)).sum()), len(labels)

    def report(self, collected, label_names, settings):
        return classification_report(collected['labels'], collected['predictions'], len(label_names))

    def format_report(self, report, label_names):
        return format_report(report, label_names)

    def figures(self, report, collected, label_names, selected_epoch):
        epoch = '' if selected_epoch is None else f', 에폭 {selected_epoch}'
        return [('confusion_matrix.png', 'confusion', {
            'matrix': report['confusion_matrix'], 'labels': label_names,
            'title': f'혼동 행렬: 선택된 모델, 평가 (confusion matrix, selected model, test){epoch}'})]

    def prediction(self, probabilities, label_names, settings):
        return {'label': label_names[int(probabilities.argmax())],
                'probabilities': {name: float(p) for name, p in zip(label_names, probabilities)}}

    def answers(self, outputs, label_names, settings):
        return [label_names[i] for i in np.asarray(outputs).argmax(axis=1)]

    def table_columns(self, prediction, label_names):
        probabilities = prediction['probabilities'] or {}
        return {'label': prediction['label'], **{f'prob_{name}': probabilities.get(name) for name in label_names}}

    def hf_answer(self, prediction, label_names, top_k=None):
        return label_scores(prediction, top_k)

    def prediction_schema(self, label_type):
        return {'label': (Optional[label_type], 'the most probable label; null for a blank text'),
                'probabilities': (Optional[Dict[label_type, float]],
                                  'softmax probability per label; null for a blank text')}


def label_scores(prediction, top_k=None):
    """The Inference API's text-classification answer: ``[{"label", "score"}]``, highest first."""
    scores = sorted((prediction['probabilities'] or {}).items(), key=lambda item: -item[1])
    return [{'label': label, 'score': score} for label, score in scores[:top_k]]


def _number(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def refuse_scores(labels, columns, source):
    """Many distinct non-integer numbers are scores, not classes: say --task regression."""
    numbers_ = [_number(value) for value in labels]
    if any(number is None or not math.isfinite(number) for number in numbers_):
        return
    distinct = {label_key(value) for value in labels}
    if len(distinct) > MAX_SCORE_CLASSES and any(not number.is_integer() for number in numbers_):
        raise DataError(f'{source}: column {columns.label!r} holds {len(distinct)} distinct numbers such as '
                        f'{sorted(distinct)[:3]}: a score, not classes; train with --task regression '
                        '(or map the scores to a few class names first)')


def refuse_lists(labels, columns, source):
    """Separated lists ('2,13') in a label column are several labels a row: say --task multi_label."""
    separator = columns.label_separator or ','
    lists = [row for row, value in enumerate(labels, start=1)
             if len([part for part in str(value).split(separator) if part.strip()]) > 1]
    if len(lists) > LIST_SHARE * len(labels):
        raise DataError(f'{source}: {len(lists)} of {len(labels)} labels in column {columns.label!r} are '
                        f'{separator!r}-separated lists (row {lists[0]}: {labels[lists[0] - 1]!r}): several labels '
                        f'per row; train with --task multi_label (--label_separator {separator!r})')


# ---------------------------------------------------------------------------- regression

class Regression(SequenceTask):
    name = 'regression'
    description = 'a score per text (one output, L2 loss), as STS-B'
    hf_problem_type = 'regression'
    select_metrics = ('spearman', 'pearson', 'mse')
    minimize = ('mse',)
    summary_metrics = ('pearson', 'spearman', 'mse')
    running_metric = 'mse'
    prediction_fields = ('score',)
    label_dtype = 'float32'

    def read_label(self, value, row, columns, source):
        number = None if is_missing(value) else _number(value)
        if number is None or not math.isfinite(number):
            raise DataError(f'{source}: row {row}, column {columns.label!r}: label {value!r} is not a number; '
                            '--task regression needs a numeric score in every row')
        return number

    def label_names(self, raw_labels, columns):
        return [columns.label or 'score']

    def encode_labels(self, label_names, raw_labels, source):
        return np.asarray(raw_labels, dtype=np.float32)

    def label_text(self, raw_label):
        return repr(float(raw_label))

    def num_outputs(self, label_names):
        return 1

    def loss(self):
        return gluon.loss.L2Loss()  # 0.5 * (prediction - score)^2, as gluonnlp's STS-B fine-tuning

    def collect(self, outputs, labels):
        return {'labels': np.asarray(labels, dtype=np.float64).reshape(-1),
                'predictions': np.asarray(outputs, dtype=np.float64).reshape(-1)}

    def running(self, outputs, labels):
        error = np.asarray(outputs, dtype=np.float64).reshape(-1) - np.asarray(labels, dtype=np.float64).reshape(-1)
        return float((error * error).sum()), len(error)

    def report(self, collected, label_names, settings):
        return regression_report(collected['labels'], collected['predictions'])

    def format_report(self, report, label_names):
        return format_regression_report(report)

    def figures(self, report, collected, label_names, selected_epoch):
        return [('scatter.png', 'scatter', {
            'x': collected['labels'].tolist(), 'y': collected['predictions'].tolist(),
            'xlabel': '정답 점수 (gold score)', 'ylabel': '예측 점수 (predicted score)',
            'title': f"예측 대 정답 (predicted vs gold, test): Spearman {report['spearman']:.3f}"})]

    def prediction(self, probabilities, label_names, settings):
        return {'score': float(np.asarray(probabilities).reshape(-1)[0])}

    def probabilities(self, outputs):
        return np.asarray(outputs, dtype=np.float32)  # a score has no probability

    def table_columns(self, prediction, label_names):
        return {'score': prediction['score']}

    hf_function = 'none'

    def hf_answer(self, prediction, label_names, top_k=None):
        return [] if prediction['score'] is None else [{'label': label_names[0], 'score': prediction['score']}]

    def prediction_schema(self, label_type):
        return {'score': (Optional[float], 'the predicted score; null for a blank text')}


# ---------------------------------------------------------------------------- multi-label

TRUE_VALUES = ('1', 'true', 'yes')
FALSE_VALUES = ('0', 'false', 'no', '')


class MultiLabel(SequenceTask):
    name = 'multi_label'
    description = 'any number of labels per text (one sigmoid each, binary cross-entropy)'
    hf_problem_type = 'multi_label_classification'
    select_metrics = ('micro_f1', 'macro_f1', 'exact_match')
    summary_metrics = ('micro_f1', 'macro_f1', 'exact_match')
    running_metric = 'exact_match'
    default_settings = {'threshold': 0.5}
    prediction_fields = ('labels', 'probabilities')
    label_dtype = 'float32'

    def read_labels(self, frame, columns, source):
        if columns.label_columns:
            return [self._from_columns(frame, row, columns, source) for row in range(len(frame))]
        labels = super().read_labels(frame, columns, source)
        check_label_column([name for names in labels for name in sorted(names)], source, columns.label)
        return labels

    def read_label(self, value, row, columns, source):
        if isinstance(value, (list, tuple, set, frozenset)):  # the Python API's lists of names
            items = [label_key(item) for item in value]
        else:
            items = [label_key(part) for part in str(value).split(columns.label_separator)]
        return frozenset(item for item in items if item)

    def _from_columns(self, frame, row, columns, source):
        chosen = []
        for column in columns.label_columns:
            value = frame[column].iloc[row]
            text = '' if is_missing(value) else label_key(value).lower()
            if text not in TRUE_VALUES + FALSE_VALUES:
                raise DataError(f'{source}: row {row + 1}, column {column!r}: {value!r} is not 0 or 1; each of '
                                '--label_columns must hold 0/1 per row')
            if text in TRUE_VALUES:
                chosen.append(column)
        return frozenset(chosen)

    def label_names(self, raw_labels, columns):
        if columns.label_columns:
            return list(columns.label_columns)
        names = set().union(*raw_labels) if raw_labels else set()
        return LabelMap.from_values(names).names if names else []

    def encode_labels(self, label_names, raw_labels, source):
        index = {name: i for i, name in enumerate(label_names)}
        targets = np.zeros((len(raw_labels), len(label_names)), dtype=np.float32)
        for row, labels in enumerate(raw_labels):
            unknown = sorted(labels - set(index))
            if unknown:
                raise DataError(f'{source}: row {row + 1}: unknown label(s) {unknown}; the training rows have '
                                f'{_listed(label_names)}')
            targets[row, [index[name] for name in labels]] = 1
        return targets

    def label_text(self, raw_label):
        return ','.join(sorted(raw_label))

    def unknown_labels(self, label_names, raw_labels):
        return sorted(set().union(*raw_labels) - set(label_names)) if raw_labels else []

    def loss(self):
        # mean over the labels of each example; from_sigmoid=False: numerically stable on logits
        return gluon.loss.SigmoidBinaryCrossEntropyLoss()

    def collect(self, outputs, labels):
        return {'labels': np.asarray(labels, dtype=np.int8), 'probabilities': sigmoid(outputs).astype(np.float32)}

    def probabilities(self, outputs):
        return sigmoid(outputs).astype(np.float32)

    def running(self, outputs, labels):
        predicted = np.asarray(outputs) > 0  # sigmoid > 0.5
        return int((predicted == (np.asarray(labels) > 0.5)).all(axis=1).sum()), len(labels)

    def report(self, collected, label_names, settings):
        threshold = self.check_settings(settings, 'task_settings')['threshold']
        report = multilabel_report(collected['labels'], collected['probabilities'] > threshold)
        return {**report, 'threshold': threshold}

    def format_report(self, report, label_names):
        return format_multilabel_report(report, label_names) + f"\n(threshold {report['threshold']:g})"

    def figures(self, report, collected, label_names, selected_epoch):
        return [('label_f1.png', 'bars', {
            'values': report['f1'], 'labels': label_names, 'xlabel': 'F1',
            'title': f"라벨별 F1 (per-label F1, test): micro {report['micro_f1']:.3f}, macro {report['macro_f1']:.3f}"})]

    def check_settings(self, settings, where):
        settings = super().check_settings(settings, where)
        threshold = settings['threshold']
        if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not 0 < threshold < 1:
            raise ConfigError(f'{where}: threshold={threshold!r} must be a number between 0 and 1')
        return {**settings, 'threshold': float(threshold)}

    def prediction(self, probabilities, label_names, settings):
        threshold = self.check_settings(settings, 'threshold')['threshold']
        return {'labels': [name for name, p in zip(label_names, probabilities) if p > threshold],
                'probabilities': {name: float(p) for name, p in zip(label_names, probabilities)}}

    def table_columns(self, prediction, label_names):
        probabilities = prediction['probabilities'] or {}
        labels = prediction['labels']
        return {'labels': None if labels is None else ','.join(labels),
                **{f'prob_{name}': probabilities.get(name) for name in label_names}}

    hf_function = 'sigmoid'

    def hf_answer(self, prediction, label_names, top_k=None):
        return label_scores(prediction, top_k)

    def prediction_schema(self, label_type):
        return {'labels': (Optional[List[label_type]], 'the labels whose probability is above the threshold; null '
                                                       'for a blank text'),
                'probabilities': (Optional[Dict[label_type, float]],
                                  'sigmoid probability per label; null for a blank text')}

    def adjusted(self, prediction, label_names, settings):
        probabilities = prediction['probabilities']
        if probabilities is None:
            return prediction
        threshold = self.check_settings(settings, 'threshold')['threshold']
        return {**prediction, 'labels': [name for name in label_names if probabilities[name] > threshold]}


def _listed(names, limit=12):
    names = list(names)
    return ', '.join(map(repr, names[:limit])) + (f' and {len(names) - limit} more' if len(names) > limit else '')


CLASSIFICATION = register(Classification())
REGRESSION = register(Regression())
MULTI_LABEL = register(MultiLabel())
