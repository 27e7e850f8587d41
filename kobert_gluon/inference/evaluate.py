"""Scoring a classifier on labeled rows: over a whole DataLoader (training's validation and
test passes) or over texts (``kobert-gluon evaluate``, ``kg.evaluate``)."""
import logging

import numpy as np
from tqdm.auto import tqdm

from ..text.data import rows_digest
from . import tasks

logger = logging.getLogger(__name__)


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


def evaluate(classifier, texts, labels, batch_size=64, source='labels'):
    """Accuracy, macro-F1, per-class report and confusion matrix of ``classifier`` on ``texts``
    with ``labels`` (names as in its label map); logs whether these are its recorded test rows."""
    label_ids = classifier.label_map.encode(labels, source=source)
    predictions = classifier.logits(texts, batch_size).argmax(axis=1)
    log_which_split(classifier, source, list(texts), labels)
    return tasks.TEXT_CLASSIFICATION.metric(label_ids, predictions, classifier.num_classes)
