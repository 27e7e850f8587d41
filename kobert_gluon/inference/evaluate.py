"""Scoring a model on labeled rows: over a whole DataLoader (training's validation and test
passes) or over texts (``kobert-gluon evaluate``, ``kg.evaluate``), refusing rows the model was
trained or selected on beyond OVERLAP_LIMIT. What is counted and reported is the model's task's
(:meth:`kobert_gluon.tasks.registry.Task.collect` / ``report``)."""
import hashlib
import logging

import numpy as np
from tqdm.auto import tqdm

from .. import arguments as _arg
from ..errors import DataError
from ..tasks.inputs import Batch, Columns, model_inputs, row_text
from ..text.data import label_key, rows_digest

logger = logging.getLogger(__name__)

OVERLAP_LIMIT = 0.10  # share of evaluated rows seen in training or selection above which evaluate refuses
ROW_HASH_CHARS = 16  # hex digits kept of each row's sha256: no collision in any realistic data set


def collect_batches(model, loader, ctx, task, desc='evaluating'):
    """The task's per-row outputs (:meth:`Task.collect`) over the whole ``loader``, concatenated."""
    parts = []
    # No bar where INFO is off: ranks > 0 of a distributed run log warnings only.
    for batch in tqdm(loader, desc=desc, leave=False, mininterval=1,
                      disable=None if logger.isEnabledFor(logging.INFO) else True):
        batch = Batch(*batch)
        outputs = forward(model, batch, ctx[0])
        parts.append(task.collect(outputs.astype('float32').asnumpy(), batch.label.asnumpy()))
    return concatenate(parts)


def concatenate(parts):
    """One dict of arrays from the per-batch dicts of :meth:`Task.collect`."""
    if not parts:
        return {}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def evaluate_batches(model, loader, ctx, task, label_names, settings=None, desc='evaluating'):
    """The task's report over the whole ``loader`` (every batch, not a sample)."""
    return task.report(collect_batches(model, loader, ctx, task, desc), label_names, settings)


def forward(model, batch, ctx):
    return model(*(array.as_in_context(ctx) for array in model_inputs(batch)))


def log_which_split(classifier, path, texts, labels):
    """Say whether ``path`` holds the model's test split, or rows it was trained or selected on."""
    split = (classifier.training or {}).get('split') or {}
    digest = rows_digest(texts, labels, classifier.task.label_text)
    matches = [name for name, part in split.items() if part.get('sha256') == digest]
    if 'test' in matches:
        logger.info('%s is the test split recorded with this model (%d rows)', path, len(texts))
    elif matches:
        logger.warning('%s is the %s split this model was %s on: these figures are optimistic', path, matches[0],
                       'trained' if matches[0] == 'train' else 'selected')
    elif split:
        logger.info('%s is not the test split recorded with this model (%d rows there, %d here)',
                    path, split.get('test', {}).get('rows', 0), len(texts))


def row_hashes(texts, labels, label_text=label_key):
    """A short sha256 of each (text, label) row, the label spelled by ``label_text`` (the task's:
    for classification ``label_key``, 1 and 1.0 alike): what is kept of the rows a model was
    trained and selected on, to count overlap. A pair's text is :func:`row_text`'s."""
    return [hashlib.sha256(f'{text}\t{label_text(label)}'.encode('utf-8', 'surrogatepass')).hexdigest()[:ROW_HASH_CHARS]
            for text, label in zip(texts, labels)]


def recorded_rows(classifier):
    """The :func:`row_hashes` the model recorded of its training and validation rows
    (``training.split.<train|valid>.row_sha256``); None where it recorded none."""
    split = (classifier.training or {}).get('split') or {}
    hashes = [part.get('row_sha256') for name, part in split.items() if name in ('train', 'valid')]
    if not hashes or any(part is None for part in hashes):
        return None
    return set().union(*hashes)


def check_overlap(texts, labels, seen, source='labels', allow=False, label_text=label_key):
    """How many rows are in ``seen`` (the :func:`row_hashes` of the training and validation rows).

    Any: a warning with the count. More than OVERLAP_LIMIT of the rows: a DataError unless
    ``allow``. ``seen`` None (nothing recorded): 0, unchecked."""
    if not seen or not len(texts):
        return 0
    count = sum(row in seen for row in row_hashes(texts, labels, label_text))
    share = count / len(texts)
    if not count:
        logger.info('%s: none of its %d rows is a training or validation row of this model', source, len(texts))
        return 0
    message = (f'{source}: {count} of {len(texts)} rows ({share:.1%}) are rows this model was trained or '
               'selected on')
    if share > OVERLAP_LIMIT and not allow:
        raise DataError(f'{message}, over the {OVERLAP_LIMIT:.0%} allowed: the scores would be optimistic. Score '
                        'held-out rows (evaluate --model RUN without --data scores the run\'s test split), or pass '
                        '--allow_overlap (allow_overlap=True in Python)')
    logger.warning('%s: these scores are optimistic', message)
    return count


def raw_labels(classifier, labels, source):
    """``labels`` as the model's task reads them (scores as floats, label lists as sets)."""
    task, columns = classifier.task, Columns()
    return [task.read_label(value, row, columns, source) for row, value in enumerate(labels, start=1)]


def evaluate(classifier, texts, labels, batch_size=64, source='labels', seen=None, allow_overlap=False,
             threshold=None):
    """The task's report of ``classifier`` on ``texts`` (strings, or ``(text, text_pair)`` items
    for a pair model) with ``labels`` (classification: names as in its label map; regression:
    scores; multi-label: lists of label names; token classification: each text's entities as
    ``(start, end, type)`` spans or ``{"start", "end", "label"}`` dicts); logs whether these are its recorded test rows.

    ``seen``: :func:`row_hashes` of the rows the model was trained and selected on; more than
    OVERLAP_LIMIT of the rows among them is refused unless ``allow_overlap`` (see check_overlap).
    ``threshold``: a multi-label model's decision threshold for this evaluation."""
    if not hasattr(classifier, 'label_map') or not hasattr(classifier, 'task'):
        _arg.instance('evaluate', 'classifier', classifier, (), 'a TextClassifier (kobert_gluon.load)')
    _arg.iterable('evaluate', 'labels', labels)
    task, names = classifier.task, classifier.label_map.names
    inputs = classifier.inputs(texts)
    labels = raw_labels(classifier, list(labels), source)
    if len(labels) != len(inputs):
        raise DataError(f'{source}: {len(labels)} labels for {len(inputs)} texts')
    targets = task.encode_labels(names, labels, source)
    keys = [row_text(text, pair) for text, pair in inputs]
    check_overlap(keys, labels, seen, source, allow_overlap, task.label_text)
    log_which_split(classifier, source, keys, labels)
    if task.per_piece:  # scored on the sentences' characters, windows merged (EntityTagger)
        collected = classifier.collect_texts([text for text, _ in inputs], labels, batch_size)
    else:
        collected = task.collect(classifier.logits([item if classifier.pair else item[0] for item in inputs],
                                                   batch_size), targets)
    return task.report(collected, names, classifier.settings_with(threshold))
