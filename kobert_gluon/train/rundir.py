"""A training run's directory: one run at a time, never overwritten by accident, and a
checkpoint to resume from even after a crash in the middle of replacing one.

Layout (see training.py for what goes into each checkpoint)::

    run.lock            held (flock) by the training that uses the directory; names its pid
    train_config.json   the TrainConfig, written when the run starts
    run_inputs.json     fingerprints of what the run was started with (data, tokenizer, model)
    split.json          the train/validation/test split (row positions and hashes)
    last/  best/        checkpoints and models
"""
import contextlib
import datetime
import logging
import os
import shutil
import socket

from .checkpoint import PRETRAIN_CONFIG_FILE, STATE_FILE, TRAIN_CONFIG_FILE, checkpoint_candidates, read_checkpoint_json
from ..assets import md5sum
from ..errors import CheckpointError
from ..fileio import write_json
from .splits import data_path

try:
    import fcntl
except ImportError:  # not POSIX: runs are then not protected against a concurrent second run
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_FILE = 'run.lock'
INPUTS_FILE = 'run_inputs.json'
SPLIT_FILE = 'split.json'
# Any of these means the directory already holds (part of) a run (pretraining's too).
RUN_FILES = (TRAIN_CONFIG_FILE, PRETRAIN_CONFIG_FILE, 'labels.json', 'last', 'best', STATE_FILE, 'bert.params',
             'pretrain.json')


def unique_run_dir(name, root='runs'):
    """``runs/<name>-<YYYYmmdd-HHMMSS>``, with a counter when that exists already."""
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    candidate = os.path.join(root, f'{name}-{stamp}')
    counter = 1
    while os.path.exists(candidate):
        counter += 1
        candidate = os.path.join(root, f'{name}-{stamp}-{counter}')
    return candidate


def holds_run(directory):
    """Also a run whose only checkpoint is a crash's leftover (last.old, .last.*.tmp)."""
    return (any(os.path.exists(os.path.join(directory, name)) for name in RUN_FILES)
            or bool(checkpoint_candidates(directory, 'last')))


@contextlib.contextmanager
def locked(directory):
    """Hold ``run.lock`` for the whole run; a second run into the same directory fails at once.

    flock is released by the kernel when the holder dies, so a crashed run never leaves a
    lock that blocks its own --resume.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    with open(path, 'a+', encoding='utf-8') as lock_file:
        if fcntl is not None:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.seek(0)
                holder = lock_file.read().strip() or 'another process'
                raise CheckpointError(f'{directory} is in use by another training ({holder}); wait for it '
                                      'to finish or choose another --output_dir') from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f'pid {os.getpid()} on {socket.gethostname()} since '
                        f'{datetime.datetime.now().isoformat(timespec="seconds")}\n')
        lock_file.flush()
        try:
            yield
        finally:
            lock_file.seek(0)
            lock_file.truncate()


def prepare(directory, resume, overwrite):
    """Refuse to start over an existing run unless told to; with ``overwrite`` clear it first."""
    if resume:
        if not holds_run(directory):
            raise CheckpointError(f'--resume: {directory} holds no run to resume')
        return
    if not holds_run(directory):
        return
    if not overwrite:
        raise CheckpointError(f'{directory} already holds a run; continue it with --resume, replace it '
                              'with --overwrite, or choose another --output_dir')
    logger.warning('--overwrite: deleting the previous run in %s', directory)
    for name in os.listdir(directory):
        if name == LOCK_FILE:
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def write_start(directory, config, inputs, split):
    write_json(os.path.join(directory, TRAIN_CONFIG_FILE), config)
    write_json(os.path.join(directory, INPUTS_FILE), inputs)
    write_json(os.path.join(directory, SPLIT_FILE), split)


def check_inputs(directory, inputs):
    """Refuse a --resume whose data, tokenizer, model size, labels or recipe differ."""
    path = os.path.join(directory, INPUTS_FILE)
    if not os.path.isfile(path):
        logger.warning('%s is missing (a run from an older version); cannot check the inputs', path)
        return
    differences = [f'{key}: was {_short(was)}, now {_short(now)}'
                   for key, was, now in _differences(read_checkpoint_json(path), inputs)]
    if differences:
        raise CheckpointError(f'--resume refused: this run of {directory} was started with other inputs '
                              f'({"; ".join(differences)}); start a new run instead')


def _differences(recorded, current, prefix=''):
    """(dotted key, recorded, current) for every leaf that differs, e.g. ('recipe.seed', 42, 9)."""
    for key in sorted(set(recorded) | set(current)):
        was, now = recorded.get(key), current.get(key)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict) and key != 'labels':
            yield from _differences(was, now, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', was, now


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


# ---------------------------------------------------------------------------- checkpoints


# Settings that shape the model a run produces; --resume refuses to change them mid-run.
RECIPE_FIELDS = ('text_column', 'label_column', 'test_size', 'valid_size', 'bert', 'max_len', 'batch_size',
                 'learning_rate', 'warmup_ratio', 'weight_decay', 'epsilon', 'max_grad_norm', 'accumulate',
                 'dropout', 'seed', 'dtype', 'bucketing', 'select_metric', 'tokenizer_vocab_size')


def run_inputs(config, splits, tokenizer_files, bert_config):
    """What a run was started with; --resume refuses to continue with anything else."""
    def fingerprint(path):
        return None if path is None else {'md5': md5sum(path), 'bytes': os.path.getsize(path)}
    return {'data': fingerprint(data_path(config)), 'test_data': fingerprint(config.test_data),
            'valid_data': fingerprint(config.valid_data),
            'init_from': fingerprint(config.init_from) if config.init_from and os.path.isfile(config.init_from)
            else config.init_from,
            'tokenizer': {role: md5sum(path) for role, path in tokenizer_files.items()},
            'bert': bert_config.to_dict(), 'labels': splits.label_map.to_dict(),
            'recipe': {name: getattr(config, name) for name in RECIPE_FIELDS}}
