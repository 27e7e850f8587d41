"""The one place a task is registered: its head, loss, metric and the format of one prediction.

Text classification is the task KoBERT's notebooks teach. A new task (token classification,
say) is one new module that builds a :class:`Task` and calls :func:`register`, plus its tests;
training, evaluation and prediction look the task up here instead of naming its parts.
"""
import dataclasses
from typing import Callable, Dict

from mxnet import gluon

from ..errors import ConfigError
from ..models.heads import build_classifier
from .metrics import classification_report


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    build_model: Callable  # (bert_config, num_outputs, dropout, ctx, bert_params) -> HybridBlock
    loss: Callable  # () -> a gluon Loss whose per-example values training sums
    metric: Callable  # (label ids, predicted ids, num_outputs) -> report dict
    prediction: Callable  # (probabilities row, label names) -> {'label', 'probabilities'}


TASKS: Dict[str, Task] = {}


def register(task):
    TASKS[task.name] = task
    return task


def get(name):
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f'task={name!r}: expected one of {sorted(TASKS)}') from None


def classification_prediction(probabilities, label_names):
    return {'label': label_names[int(probabilities.argmax())],
            'probabilities': {name: float(p) for name, p in zip(label_names, probabilities)}}


TEXT_CLASSIFICATION = register(Task('text_classification', build_classifier, gluon.loss.SoftmaxCELoss,
                                    classification_report, classification_prediction))
