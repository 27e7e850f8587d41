"""Train / validation / test rows of a fine-tuning run, and the loaders over them: separate files
where given, else seeded splits (stratified by label for classification); labels read by the
run's task and checked across the splits; what split.json and the models record."""
import dataclasses
import logging
import os

import gluonnlp as nlp
import numpy as np
from mxnet import gluon

from ..errors import DataError
from ..inference.evaluate import row_hashes
from ..tasks import registry
from ..tasks.inputs import Columns, Example, row_text
from ..text.data import (LabelMap, check_text, demo_data_path, is_missing, read_frame, read_table, rows_digest,
                         split_positions)
from .distributed import Engine, shard_batches
from .split_checks import check_class_coverage, check_leakage, check_split_files

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Part:
    """The rows of one split as read: their texts, the task's raw labels, where they came from."""
    texts: list
    text_pairs: list  # None per row for single sentences
    labels: list
    source: str
    positions: object = None  # row positions in the data file (None: a separate file)

    def take(self, rows, positions):
        return Part([self.texts[i] for i in rows], [self.text_pairs[i] for i in rows],
                    [self.labels[i] for i in rows], self.source, positions)

    def __len__(self):
        return len(self.texts)

    def keys(self):
        """Each row's text as row hashes and digests spell it."""
        return [row_text(text, pair) for text, pair in zip(self.texts, self.text_pairs)]


@dataclasses.dataclass
class Splits:
    """Rows are :class:`~kobert_gluon.tasks.inputs.Example` (text, text_pair, encoded label);
    ``record`` goes to split.json and into the saved models; ``parts`` holds the raw rows."""
    train: list
    valid: list
    test: list
    label_map: object
    record: dict
    parts: dict = None
    task: object = None


def read_part(path, columns, task):
    """The rows of ``path`` with their texts and the task's raw labels (errors name the row)."""
    rows = task.read_rows(path, columns)
    if rows is not None:  # a file the task reads itself (entity files)
        return Part(*rows, path)
    frame = read_columns(path, columns.check_distinct())
    pairs = list(frame[columns.text_pair]) if columns.text_pair else [None] * len(frame)
    return Part(list(frame[columns.text]), pairs, task.read_labels(frame, columns, path), path)


def read_columns(path, columns):
    """The text, text pair and label column(s) of a table. Single sentences with one label column
    are read as they always were (read_table: empty rows dropped and counted)."""
    if not columns.text_pair and not columns.label_columns:
        return read_table(path, columns.text, columns.label, sheet=columns.sheet)
    frame = read_frame(path, sheet=columns.sheet)
    flags = [('--text_column', columns.text)] + ([('--text_pair_column', columns.text_pair)] if columns.text_pair else [])
    flags += [('--label_columns', name) for name in columns.label_columns] or [('--label_column', columns.label)]
    for flag, name in flags:
        if name not in frame.columns:
            raise DataError(f'{path}: no column {name!r} ({flag}); the columns are {list(map(str, frame.columns))}')
    frame = frame[columns.all()]
    frame = drop_empty_rows(frame, columns, path)
    for column in columns.texts():
        frame[column] = frame[column].astype(str)
        for row, text in enumerate(frame[column], start=1):
            check_text(text, f'{path}: row {row}, column {column!r}')
    return frame


def _blank(value):
    return is_missing(value) or str(value).strip() == ''


def drop_empty_rows(frame, columns, path):
    """Rows without any text, or without a label, are dropped and counted (as read_table does); a
    pair with one text empty is refused: it cannot be scored."""
    texts = frame[columns.texts()].apply(lambda column: column.map(_blank))
    half = texts.any(axis=1) & ~texts.all(axis=1)
    if half.any():
        row = int(np.flatnonzero(half.to_numpy())[0])
        column = next(name for name in columns.texts() if texts[name].iloc[row])
        raise DataError(f'{path}: row {row + 1}: column {column!r} is empty but the other text of the pair is not; '
                        'every pair needs both sentences (remove the row or fill it in)')
    usable = ~texts.all(axis=1)
    if not columns.label_columns:
        usable &= ~frame[columns.label].map(_blank)
    dropped = int((~usable).sum())
    if dropped:
        logger.warning('%s: dropped %d of %d rows with empty or missing text/label', path,
                                            dropped, len(frame))
    frame = frame[usable].reset_index(drop=True)
    if frame.empty:
        raise DataError(f'{path}: no usable rows (all {dropped} rows have empty text or label)')
    return frame


def load_splits(config):
    """Train / validation / test rows: separate files where given, else seeded splits."""
    task, columns, path = registry.get(config.task), Columns.of(config), data_path(config)
    check_split_files(config, path)
    whole = read_part(path, columns, task)
    parts = {'train': whole.take(range(len(whole)), np.arange(len(whole)))}
    if config.test_data:
        parts['test'] = read_part(config.test_data, columns, task)
    else:
        kept, held = split_positions(task.split_keys(whole.labels), config.test_size, config.seed)
        parts['train'], parts['test'] = whole.take(kept, kept), whole.take(held, held)
    if config.valid_data:
        parts['valid'] = read_part(config.valid_data, columns, task)
    elif config.valid_size > 0:
        train = parts['train']
        kept, held = split_positions(task.split_keys(train.labels), config.valid_size, config.seed + 1)
        parts['train'], parts['valid'] = train.take(kept, train.positions[kept]), train.take(held, train.positions[held])
    for name in ('train', 'test'):
        if len(parts[name]) == 0:
            raise DataError(f'{parts[name].source}: the {name} split is empty ({len(whole)} usable rows, '
                            f'test_size={config.test_size}, valid_size={config.valid_size}); use more data or '
                            'larger shares')
    check_training_rows(parts, len(whole), config)
    check_class_coverage(parts, task, columns, config.valid_size)
    names = task.label_names(parts['train'].labels, columns)
    check_labels(task, names, parts, config)
    check_leakage(parts, task, config.allow_overlap)

    def examples(name):
        part = parts[name]
        targets = task.encode_labels(names, part.labels, part.source)
        return [Example(text, pair, target) for text, pair, target in zip(part.texts, part.text_pairs, targets)]
    record = {name: {'source': os.path.basename(part.source), 'rows': len(part),
                     'positions': None if part.positions is None else [int(p) for p in part.positions],
                     'sha256': rows_digest(part.keys(), part.labels, task.label_text)}
              for name, part in parts.items()}
    return Splits(examples('train'), examples('valid') if 'valid' in parts else [], examples('test'),
                  LabelMap(names), record, parts, task)


MIN_TRAIN_ROWS = 8  # fewer rows than this train nothing: a split setting is almost certainly wrong


def check_training_rows(parts, usable, config):
    """The training part must keep at least MIN_TRAIN_ROWS rows (``--test_size 0.99`` left 2)."""
    rows = len(parts['train'])
    if rows < MIN_TRAIN_ROWS:
        shares = ('' if config.test_data else f'test_size={config.test_size} of all rows, ') + \
            ('' if config.valid_data else f'valid_size={config.valid_size} of the rest')
        raise DataError(f'{parts["train"].source}: only {rows} of {usable} usable rows are left for training '
                        f'(at least {MIN_TRAIN_ROWS} needed) after holding out {shares.rstrip(", ")}; '
                        'use smaller shares or more data')


def check_labels(task, names, parts, config):
    train_source = parts['train'].source
    if len(names) < task.min_labels:
        count = {0: 'no label', 1: 'only one label'}.get(len(names), f'only {len(names)} labels')
        raise DataError(f'{train_source}: the training rows have {count} {names}; --task {task.name} needs at least '
                        f'{task.min_labels}')
    for name in ('valid', 'test'):
        if name not in parts:
            continue
        unseen = task.unknown_labels(names, parts[name].labels)
        if unseen:
            raise DataError(f'{parts[name].source}: label(s) {unseen} in the {name} rows never occur in the training '
                            'rows; a class without training rows cannot be learned')
    if config.num_classes is not None and len(names) != config.num_classes:
        raise DataError(f'{train_source}: {len(names)} distinct labels {names} but '
                        f'num_classes={config.num_classes}')


def data_path(config):
    return config.data or demo_data_path()


def make_loader(dataset, config, shuffle, pad_id, engine=None, task=None):
    """This rank's DataLoader (one process's without ``engine``). Shuffling draws from numpy's
    global generator, as gluon's own loader does, so every rank must have seeded it alike."""
    if not config.bucketing:
        engine = engine or Engine()
        plan = shard_batches(len(dataset), config.batch_size, engine.rank, engine.num_workers, shuffle)
        return gluon.data.DataLoader(dataset, batch_sampler=[indices for indices, _ in plan])
    task = task or registry.get(config.task)
    lengths = [int(item[1]) for item in dataset]  # one process only: TrainConfig.validate
    sampler = nlp.data.FixedBucketSampler(lengths, batch_size=config.batch_size, num_buckets=10,
                                          ratio=0, shuffle=shuffle)
    # Rounding widths to a multiple of 8 bounds how many shapes the graph is built for.
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=pad_id, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'),
                                       nlp.data.batchify.Pad(axis=0, pad_val=0, dtype='int32', round_to=8),
                                       task.label_batchify())
    return gluon.data.DataLoader(dataset, batch_sampler=sampler, batchify_fn=batchify)


def model_split_record(splits):
    """What a saved model records of its split: rows and sha256 per split, and a short hash of each
    training and validation row, so ``evaluate`` can count a file's overlap with them."""
    record = {name: {'rows': part['rows'], 'sha256': part['sha256']} for name, part in splits.record.items()}
    for name in ('train', 'valid'):
        if name in record:
            part = splits.parts[name]
            record[name]['row_sha256'] = row_hashes(part.keys(), part.labels, splits.task.label_text)
    return record
