"""The task registry: a :class:`Task` owns everything that differs between what a model does with
its sentences (one label, a score, several labels, a tag per piece).

A task knows its input columns, how its labels are read and encoded, its head and loss, the
per-batch outputs it collects (summed over batches and workers) and the report built from them,
the metrics that can select a model, the figures of its test report, and the record of one
prediction. Training (``training/``), evaluation, prediction (``inference/``), serving and the
converters call these methods and never name a task; a new task is one module that subclasses
:class:`Task` and calls :func:`register`.

``config.json`` of a model directory records the task's name (``task``) and its settings
(``task_settings``, e.g. a multi-label threshold); a directory without ``task`` is a
classifier, so the directories of earlier versions load unchanged.
"""
import logging

import gluonnlp as nlp
import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TASK = 'classification'


class Task:
    """Base class: the hooks every task fills in (see the sequence tasks in :mod:`.sequence`)."""
    name = None
    aliases = ()  # older names of the task that still select it
    description = ''
    # transformers' names of the head and of the problem (config.json's problem_type)
    hf_architecture = 'BertForSequenceClassification'
    hf_problem_type = None
    hf_pipeline = 'text-classification'
    hf_pipeline_arguments = 'top_k=None, truncation=True'  # the model card's pipeline() call
    select_metrics = ()  # validation metrics that can pick best/; the first is the default
    minimize = ()  # of those, the ones where lower is better
    summary_metrics = ()  # logged per epoch and in metrics.jsonl as valid_<name> / test_<name>
    running_metric = None  # the training-set figure shown while training (train_<name>)
    default_settings = {}  # task_settings recorded in the model directory (threshold, ...)
    pairs = True  # whether --text_pair_column is allowed
    prediction_fields = ()  # a prediction's fields besides the text; the first is predict()'s answer
    min_labels = 1  # label names the training rows must have
    label_dtype = 'int32'  # of the encoded targets
    per_piece = False  # outputs per piece (token classification): scored on the texts, not the batches

    # ---------------------------------------------------------------- labels
    def read_rows(self, path, columns):
        """``(texts, text_pairs, raw labels)`` of a data file the task reads itself (entity files);
        None: a table, read by its columns (:meth:`read_labels`)."""
        return None

    def read_labels(self, frame, columns, source):
        """Raw labels of ``frame``'s rows (one value per row), read from ``columns`` (a
        :class:`~.inputs.Columns`); a DataError names the row and column of a bad one."""
        raise NotImplementedError

    def label_names(self, raw_labels, columns):
        """The output names, in output order, from the training rows' raw labels."""
        raise NotImplementedError

    def encode_labels(self, label_names, raw_labels, source):
        """A numpy array of the model's targets, one entry per raw label."""
        raise NotImplementedError

    def unknown_labels(self, label_names, raw_labels):
        """Raw labels (of validation or test rows) outside ``label_names``, sorted."""
        return []

    def label_batchify(self):
        """gluonnlp batchify function of the targets (for --bucketing's own batches)."""
        return nlp.data.batchify.Stack(self.label_dtype)

    def label_text(self, raw_label):
        """One spelling of a raw label, for row hashes and split digests."""
        return str(raw_label)

    def encode_examples(self, examples, tokenizer, max_len, pad, pair, label_names, settings, source=''):
        """The training examples as a dataset of (token_ids, valid_length, segment_ids, target)
        items: BERTSentenceTransform's, one per example (:func:`~.inputs.encode_examples`)."""
        from .inputs import encode_examples
        return encode_examples(examples, tokenizer, max_len, pad, pair)

    def split_keys(self, raw_labels):
        """Keys a split keeps the shares of (stratified); one key for all: a plain seeded split."""
        return ['all'] * len(raw_labels)

    # ---------------------------------------------------------------- model
    def build_model(self, bert_config, num_outputs, dropout, ctx, bert_params=None):
        raise NotImplementedError

    def loss(self):
        """A gluon Loss giving one value per example; training sums them."""
        raise NotImplementedError

    def num_outputs(self, label_names):
        return len(label_names)

    # ---------------------------------------------------------------- metrics
    def collect(self, outputs, labels):
        """Per-row numpy arrays of one batch (``outputs``: the model's numpy outputs, ``labels``:
        the encoded targets), concatenated over batches and workers before :meth:`report`."""
        raise NotImplementedError

    def running(self, outputs, labels):
        """``(sum, count)`` of :attr:`running_metric` over one training batch."""
        raise NotImplementedError

    def report(self, collected, label_names, settings):
        """The metrics (a JSON-able dict) of the rows in ``collected``."""
        raise NotImplementedError

    def format_report(self, report, label_names):
        """The report as a plain-text table for logs and the CLI."""
        raise NotImplementedError

    def summary(self, report):
        """The report's :attr:`summary_metrics` on one line."""
        if report is None:
            return 'none'
        return ' '.join(f'{name} {report[name]:.4f}' for name in self.summary_metrics)

    def figures(self, report, collected, label_names, selected_epoch):
        """``[(file name, chart kind, data)]`` drawn from the test report (training/plots.py)."""
        return []

    def improved(self, value, best, metric):
        if best is None:
            return True
        return value < best if metric in self.minimize else value > best

    # ---------------------------------------------------------------- prediction
    def prediction(self, probabilities, label_names, settings):
        """The task's fields of one prediction, from :meth:`probabilities` of one input's outputs."""
        raise NotImplementedError

    def probabilities(self, outputs):
        """The model's outputs (float32, a row per input) as the task's probabilities: a softmax
        over the last axis, in float32 (the values predict_proba always gave)."""
        outputs = np.asarray(outputs, dtype=np.float32)
        shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def answers(self, outputs, label_names, settings):
        """``predict()``'s answer for each row of outputs: the first of :attr:`prediction_fields`."""
        field = self.prediction_fields[0]
        return [self.prediction(row, label_names, settings)[field] for row in self.probabilities(outputs)]

    def blank_prediction(self, label_names):
        """The fields of a prediction for a blank input (nothing to predict): all None."""
        raise NotImplementedError

    def table_columns(self, prediction, label_names):
        """The columns ``predict`` adds to a table (and writes as TSV) for one prediction."""
        raise NotImplementedError

    hf_function = 'softmax'  # the Inference API's function_to_apply that gives this task's scores

    def hf_answer(self, prediction, label_names, top_k=None):
        """The Hugging Face Inference API's answer for one input."""
        raise NotImplementedError

    def hf_answer_type(self, label_type):
        """The type of one item of :meth:`hf_answer`'s list, for the API documentation; None: the
        text-classification ``{"label", "score"}``."""
        return None

    def prediction_schema(self, label_type):
        """``{field: (type annotation, description)}`` of a prediction's task fields, for the
        server's API documentation; ``label_type`` is the type of one label name."""
        raise NotImplementedError

    def adjusted(self, prediction, label_names, settings):
        """A prediction made with the model's settings, remade for ``settings`` (a request's own
        threshold); the prediction itself where no setting changes it."""
        return prediction

    # ---------------------------------------------------------------- settings
    def check_settings(self, settings, where):
        """``settings`` (task_settings) completed with the defaults; ConfigError naming ``where``."""
        unknown = sorted(set(settings or {}) - set(self.default_settings))
        if unknown:
            raise ConfigError(f'{where}: unknown setting(s) {unknown} for task {self.name!r}; known: '
                              f'{sorted(self.default_settings)}')
        return {**self.default_settings, **(settings or {})}

    def __repr__(self):
        return f'<task {self.name}>'


TASKS = {}


def register(task):
    """Add a Task instance (and its aliases) to the registry; returns it."""
    for name in (task.name, *task.aliases):
        if name in TASKS and TASKS[name] is not task:
            raise ValueError(f'task name {name!r} is registered twice')
        TASKS[name] = task
    return task


TASK_MODULES = ('sequence', 'tokens')  # the modules whose import registers the tasks


def load_tasks():
    import importlib

    for module in TASK_MODULES:
        importlib.import_module(f'{__package__}.{module}')


def names():
    """The registered task names (aliases left out), in registration order."""
    load_tasks()
    seen = []
    for task in TASKS.values():
        if task.name not in seen:
            seen.append(task.name)
    return tuple(seen)


def get(name, where='task'):
    """The registered task called ``name``; None means the default (text classification)."""
    load_tasks()
    name = DEFAULT_TASK if name is None else name
    task = TASKS.get(name) if isinstance(name, str) else None
    if task is None:
        raise ConfigError(f'{where}={name!r}: expected one of {list(names())}')
    return task


def as_numpy(array):
    """An NDArray or a list as a numpy array (what :meth:`Task.collect` works on)."""
    return array.asnumpy() if hasattr(array, 'asnumpy') else np.asarray(array)
