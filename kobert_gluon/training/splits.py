"""Train / validation / test rows of a fine-tuning run, and the loaders over them: separate files where given, else seeded
stratified splits; labels checked across the splits; what split.json and the models record."""
import dataclasses
import os

import gluonnlp as nlp
import numpy as np
from mxnet import gluon

from ..errors import DataError
from ..inference.evaluate import row_hashes
from .distributed import Engine, shard_batches
from ..text.data import LabelMap, demo_data_path, label_key, read_table, rows_digest, split_positions


@dataclasses.dataclass
class Splits:
    """Rows are (text, label id); ``record`` goes to split.json and into the saved models."""
    train: list
    valid: list
    test: list
    label_map: LabelMap
    record: dict


def load_splits(config):
    """Train / validation / test rows: separate files where given, else seeded stratified splits."""
    path = data_path(config)
    frame = read_table(path, config.text_column, config.label_column)
    labels = frame[config.label_column]
    parts = {'train': (frame, path, np.arange(len(frame)))}
    if config.test_data:
        parts['test'] = (read_table(config.test_data, config.text_column, config.label_column), config.test_data, None)
    else:
        kept, held = split_positions(labels, config.test_size, config.seed)
        parts['train'], parts['test'] = (frame.iloc[kept], path, kept), (frame.iloc[held], path, held)
    if config.valid_data:
        parts['valid'] = (read_table(config.valid_data, config.text_column, config.label_column), config.valid_data, None)
    elif config.valid_size > 0:
        train_frame, _, train_rows = parts['train']
        kept, held = split_positions(train_frame[config.label_column], config.valid_size, config.seed + 1)
        parts['train'] = (train_frame.iloc[kept], path, train_rows[kept])
        parts['valid'] = (train_frame.iloc[held], path, train_rows[held])
    for name in ('train', 'test'):
        if len(parts[name][0]) == 0:
            raise DataError(f'{parts[name][1]}: the {name} split is empty ({len(frame)} usable rows, '
                            f'test_size={config.test_size}, valid_size={config.valid_size}); use more data or '
                            'larger shares')
    check_training_rows(parts, len(frame), config)
    label_map = LabelMap.from_values(parts['train'][0][config.label_column])
    check_labels(label_map, parts, config)

    def rows(name):
        part, source, _ = parts[name]
        return list(zip(part[config.text_column], label_map.encode(part[config.label_column], source)))
    record = {name: {'source': os.path.basename(source), 'rows': len(part),
                     'positions': None if positions is None else [int(p) for p in positions],
                     'sha256': rows_digest(part[config.text_column], part[config.label_column])}
              for name, (part, source, positions) in parts.items()}
    return Splits(rows('train'), rows('valid') if 'valid' in parts else [], rows('test'), label_map, record)


MIN_TRAIN_ROWS = 8  # fewer rows than this train nothing: a split setting is almost certainly wrong


def check_training_rows(parts, usable, config):
    """The training part must keep at least MIN_TRAIN_ROWS rows (``--test_size 0.99`` left 2)."""
    rows = len(parts['train'][0])
    if rows < MIN_TRAIN_ROWS:
        shares = ('' if config.test_data else f'test_size={config.test_size} of all rows, ') + \
            ('' if config.valid_data else f'valid_size={config.valid_size} of the rest')
        raise DataError(f'{parts["train"][1]}: only {rows} of {usable} usable rows are left for training '
                        f'(at least {MIN_TRAIN_ROWS} needed) after holding out {shares.rstrip(", ")}; '
                        'use smaller shares or more data')


def check_labels(label_map, parts, config):
    train_source = parts['train'][1]
    if len(label_map) < 2:
        raise DataError(f'{train_source}: the training rows have only one label {label_map.names}; '
                        'a classifier needs at least two')
    for name in ('valid', 'test'):
        if name not in parts:
            continue
        part, source, _ = parts[name]
        unseen = sorted({label_key(v) for v in part[config.label_column]} - set(label_map.names))
        if unseen:
            raise DataError(f'{source}: label(s) {unseen} in the {name} rows never occur in the training rows; '
                            f'a class without training rows cannot be learned')
    if config.num_classes is not None and len(label_map) != config.num_classes:
        raise DataError(f'{train_source}: {len(label_map)} distinct labels {label_map.names} but '
                        f'num_classes={config.num_classes}')


def data_path(config):
    return config.data or demo_data_path()


def make_loader(dataset, config, shuffle, pad_id, engine=None):
    """This rank's DataLoader (one process's without ``engine``). Shuffling draws from numpy's
    global generator, as gluon's own loader does, so every rank must have seeded it alike."""
    if not config.bucketing:
        engine = engine or Engine()
        plan = shard_batches(len(dataset), config.batch_size, engine.rank, engine.num_workers, shuffle)
        return gluon.data.DataLoader(dataset, batch_sampler=[indices for indices, _ in plan])
    lengths = [int(item[1]) for item in dataset]  # one process only: TrainConfig.validate
    sampler = nlp.data.FixedBucketSampler(lengths, batch_size=config.batch_size, num_buckets=10,
                                          ratio=0, shuffle=shuffle)
    # Rounding widths to a multiple of 8 bounds how many shapes the graph is built for.
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=pad_id, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'),
                                       nlp.data.batchify.Pad(axis=0, pad_val=0, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'))
    return gluon.data.DataLoader(dataset, batch_sampler=sampler, batchify_fn=batchify)


def model_split_record(splits):
    """What a saved model records of its split: rows and sha256 per split, and a short hash of each
    training and validation row, so ``evaluate`` can count a file's overlap with them."""
    record = {name: {'rows': part['rows'], 'sha256': part['sha256']} for name, part in splits.record.items()}
    for name in ('train', 'valid'):
        if name in record:
            rows = getattr(splits, name)
            record[name]['row_sha256'] = row_hashes([text for text, _ in rows],
                                                    [splits.label_map.names[i] for _, i in rows])
    return record
