"""Leakage between the splits of a fine-tuning run, checked before any training.

The rule is ``evaluate``'s (:func:`~kobert_gluon.inference.evaluate.check_overlap`): a row is a
(text, label) pair, hashed by :func:`~kobert_gluon.inference.evaluate.row_hashes`. The test rows
are compared with the training and validation rows, the validation rows with the training rows:

- one file given as two splits (``--test_data`` = ``--data``, ``--valid_data`` = ``--test_data``
  ...) is refused outright: a model selected or scored on its own training rows;
- a separate file of which over OVERLAP_LIMIT of the rows are rows of the split it is compared
  with is refused unless ``allow_overlap`` (recorded in train_config.json); below that a warning
  gives the count;
- splits drawn from one data file share rows only where the file repeats them: a property of
  the data, so a warning with the count, never a refusal.
"""
import logging
import os

from ..errors import DataError
from ..inference.evaluate import OVERLAP_LIMIT, row_hashes

logger = logging.getLogger(__name__)

FLAGS = (('data', '--data'), ('valid_data', '--valid_data'), ('test_data', '--test_data'))


def _same_file(first, second):
    try:
        return os.path.samefile(first, second)
    except OSError:
        return os.path.abspath(first) == os.path.abspath(second)


def check_split_files(config, data_path):
    """The same file named as two splits is refused (also through another path or a link)."""
    given = [(flag, data_path if name == 'data' else getattr(config, name)) for name, flag in FLAGS]
    given = [(flag, path) for flag, path in given if path]
    for i, (flag, path) in enumerate(given):
        for other_flag, other in given[i + 1:]:
            if _same_file(path, other):
                raise DataError(f'{other}: {other_flag} is the same file as {flag} ({path}): the model would be '
                                'selected or scored on the rows it learned from; give each split rows of its own '
                                f'(or leave {other_flag} out: a seeded split)')


def check_leakage(parts, task, allow=False):
    """Count the test rows found among the training and validation rows, and the validation rows
    among the training rows; refuse a separate file above OVERLAP_LIMIT (see the module)."""
    hashes = {name: row_hashes(part.keys(), part.labels, task.label_text) for name, part in parts.items()}
    counts = {}
    for held, against in (('test', ('train', 'valid')), ('valid', ('train',))):
        if held not in parts:
            continue
        seen = set().union(*(hashes[name] for name in against if name in parts))
        count = sum(row in seen for row in hashes[held])
        counts[held] = count
        if count:
            _judge(parts, held, [name for name in against if name in parts], count, allow)
    return counts


def _judge(parts, held, against, count, allow):
    part = parts[held]
    share = count / len(part)
    message = f'{part.source}: {count} of {len(part)} {held} rows ({share:.1%}) are also {" or ".join(against)} rows'
    separate = part.positions is None or any(parts[name].positions is None for name in against)
    if not separate:
        logger.warning('%s: the data file repeats them (the same text and label in several rows), so the %s '
                       'figures include rows seen in training', message, held)
    elif share > OVERLAP_LIMIT and not allow:
        raise DataError(f'{message}, over the {OVERLAP_LIMIT:.0%} allowed: the {held} figures would be optimistic. '
                        f'Give the {held} split rows of its own, or pass --allow_overlap (allow_overlap=True)')
    else:
        logger.warning('%s: these %s figures are optimistic', message, held)


def check_class_coverage(parts, task, columns, valid_size):
    """A split that cannot hold every class says so. An empty validation split drawn from the
    training rows (10 rows, or 500 classes of 3 rows, leave round(share x rows) = 0 of each class)
    falls back to no model selection, as valid_size=0, with a warning; a validation or test split
    missing some classes is a warning naming how many (their figures leave those classes out)."""
    if 'valid' in parts and len(parts['valid']) == 0:
        del parts['valid']
        logger.warning('valid_size=%g of the %d training rows leaves no validation row (each class keeps '
                       'round(%g x its rows) of them): no model selection, best/ is the last epoch. Use more data, '
                       'a larger --valid_size, or --valid_data', valid_size, len(parts['train']), valid_size)
    names = task.label_names(parts['train'].labels, columns)
    for name in ('valid', 'test'):
        if name not in parts:
            continue
        absent = task.unknown_labels(task.label_names(parts[name].labels, columns), parts['train'].labels)
        if absent:
            logger.warning('%s: the %s split (%d rows) has no row of %d of the %d classes (such as %s): its figures '
                           'leave them out; use more data or a larger share', parts[name].source, name,
                           len(parts[name]), len(absent), len(names), ', '.join(map(repr, absent[:3])))
