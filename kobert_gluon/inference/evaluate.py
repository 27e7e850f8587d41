"""Scoring a classifier on labeled rows: over a whole DataLoader (training's validation and
test passes) or over texts (``kobert-gluon evaluate``, ``kg.evaluate``), refusing rows the model
was trained or selected on beyond OVERLAP_LIMIT."""
import hashlib
import logging

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ..text.data import label_key, rows_digest
from . import tasks

logger = logging.getLogger(__name__)

OVERLAP_LIMIT = 0.10  # share of evaluated rows seen in training or selection above which evaluate refuses
ROW_HASH_CHARS = 16  # hex digits kept of each row's sha256: no collision in any realistic data set


def evaluate_batches(model, loader, ctx, num_classes, desc='evaluating'):
    """Report over the whole ``loader`` (every batch, not a sample)."""
    labels, predictions = [], []
    # No bar where INFO is off: ranks > 0 of a distributed run log warnings only.
    for token_ids, valid_length, segment_ids, label in tqdm(loader, desc=desc, leave=False, mininterval=1,
                                                            disable=None if logger.isEnabledFor(logging.INFO) else True):
        logits = forward(model, token_ids, segment_ids, valid_length, ctx[0])
        predictions.append(logits.argmax(axis=1).astype('int32').asnumpy())
        labels.append(label.asnumpy())
    return tasks.TEXT_CLASSIFICATION.metric(np.concatenate(labels), np.concatenate(predictions), num_classes)


def forward(model, token_ids, segment_ids, valid_length, ctx):
    return model(token_ids.as_in_context(ctx), segment_ids.as_in_context(ctx), valid_length.as_in_context(ctx))


def log_which_split(classifier, path, texts, labels):
    """Say whether ``path`` holds the model's test split, or rows it was trained or selected on."""
    split = (classifier.training or {}).get('split') or {}
    digest = rows_digest(texts, labels)
    matches = [name for name, part in split.items() if part.get('sha256') == digest]
    if 'test' in matches:
        logger.info('%s is the test split recorded with this model (%d rows)', path, len(texts))
    elif matches:
        logger.warning('%s is the %s split this model was %s on: these figures are optimistic', path, matches[0],
                       'trained' if matches[0] == 'train' else 'selected')
    elif split:
        logger.info('%s is not the test split recorded with this model (%d rows there, %d here)',
                    path, split.get('test', {}).get('rows', 0), len(texts))


def row_hashes(texts, labels):
    """A short sha256 of each (text, label) row, the label spelled as ``label_key`` spells it (1 and
    1.0 alike): what is kept of the rows a model was trained and selected on, to count overlap."""
    return [hashlib.sha256(f'{text}\t{label_key(label)}'.encode('utf-8', 'surrogatepass')).hexdigest()[:ROW_HASH_CHARS]
            for text, label in zip(texts, labels)]


def recorded_rows(classifier):
    """The :func:`row_hashes` the model recorded of its training and validation rows
    (``training.split.<train|valid>.row_sha256``); None where it recorded none."""
    split = (classifier.training or {}).get('split') or {}
    hashes = [part.get('row_sha256') for name, part in split.items() if name in ('train', 'valid')]
    if not hashes or any(part is None for part in hashes):
        return None
    return set().union(*hashes)


def check_overlap(texts, labels, seen, source='labels', allow=False):
    """How many rows are in ``seen`` (the :func:`row_hashes` of the training and validation rows).

    Any: a warning with the count. More than OVERLAP_LIMIT of the rows: a DataError unless
    ``allow``. ``seen`` None (nothing recorded): 0, unchecked."""
    if not seen or not len(texts):
        return 0
    count = sum(row in seen for row in row_hashes(texts, labels))
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


def evaluate(classifier, texts, labels, batch_size=64, source='labels', seen=None, allow_overlap=False):
    """Accuracy, macro-F1, per-class report and confusion matrix of ``classifier`` on ``texts``
    with ``labels`` (names as in its label map); logs whether these are its recorded test rows.

    ``seen``: :func:`row_hashes` of the rows the model was trained and selected on; more than
    OVERLAP_LIMIT of the rows among them is refused unless ``allow_overlap`` (see check_overlap)."""
    texts = list(texts)
    label_ids = classifier.label_map.encode(labels, source=source)
    check_overlap(texts, list(labels), seen, source, allow_overlap)
    predictions = classifier.logits(texts, batch_size).argmax(axis=1)
    log_which_split(classifier, source, texts, labels)
    return tasks.TEXT_CLASSIFICATION.metric(label_ids, predictions, classifier.num_classes)
