"""A training run's directory: one run at a time, never overwritten by accident, and a
checkpoint to resume from even after a crash in the middle of replacing one.

Layout (see training.py for what goes into each checkpoint)::

    run.lock            held (flock) by the training that uses the directory; names its pid
    run_manifest.json   every top-level name the run wrote, recorded before it is written:
                        --overwrite deletes these and nothing else (the user's notes stay)
    train_config.json   the TrainConfig, written when the run starts
    run_inputs.json     fingerprints of what the run was started with (data, tokenizer, model)
    split.json          the train/validation/test split (row positions and hashes)
    last/  best/        checkpoints and models
"""
import contextlib
import dataclasses
import datetime
import logging
import os
import socket

from .checkpoint import PRETRAIN_CONFIG_FILE, STATE_FILE, TRAIN_CONFIG_FILE, checkpoint_candidates, read_checkpoint_json
from ..assets import md5sum
from ..errors import CheckpointError
from ..fileio import (RUN_MANIFEST, check_output_location, is_temporary, leftovers_of, read_json, recording_writes,
                      remove_entry, write_json)
from .config import TrainConfig, recipe_fields
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
MANIFEST_FILE = RUN_MANIFEST
MANIFEST_FORMAT = 'kobert_gluon.run_manifest'
# Any of these means the run got as far as a checkpoint or a result; without one, a failed run
# (a typo in a column name, a failed download) is replaced by the next run without a flag.
RESULTS = ('last', 'best', 'bert.params', 'pretrain.json', 'test_report.json')


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
    check_output_location(directory, CheckpointError, '--output_dir')
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_FILE)
    new_lock = not os.path.exists(path)
    with open(path, 'a+', encoding='utf-8') as lock_file, _cleaned_up(directory, new_lock):
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
            with recording_writes(directory, lambda name: record(directory, name)):
                yield
        finally:
            lock_file.seek(0)
            lock_file.truncate()


@contextlib.contextmanager
def _cleaned_up(directory, new_lock):
    """A run refused before it wrote anything leaves no run.lock behind in the user's folder."""
    try:
        yield
    finally:
        if new_lock and not os.path.exists(os.path.join(directory, MANIFEST_FILE)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, LOCK_FILE))


def read_manifest(directory):
    """The top-level names a run recorded writing into ``directory``; None when it has no
    (valid) manifest: then nothing there is known to be the run's."""
    try:
        manifest = read_json(os.path.join(directory, MANIFEST_FILE))
    except (OSError, ValueError):
        return None
    entries = manifest.get('entries') if isinstance(manifest, dict) else None
    if manifest.get('format') != MANIFEST_FORMAT or not isinstance(entries, list):
        return None
    return [name for name in entries if _plain_name(name)]


def _plain_name(name):
    return isinstance(name, str) and os.path.basename(name) == name and name not in ('', '.', '..')


def record(directory, name):
    """Add ``name`` to the manifest before it is written (atomically: a crash leaves the old list
    or the new one). The lock file and the manifest itself are the run's without a record."""
    if name in (MANIFEST_FILE, LOCK_FILE) or is_temporary(name):
        return
    entries = read_manifest(directory) or []
    if name not in entries:
        write_json(os.path.join(directory, MANIFEST_FILE), {'format': MANIFEST_FORMAT, 'entries': entries + [name]})


def prepare(directory, resume, overwrite):
    """Refuse to start over an existing run unless told to; with ``overwrite`` delete what the
    run wrote (its manifest's entries), never anything else. A folder that is not a run (no
    manifest) is refused unless empty; a run that failed before its first checkpoint is
    replaced without a flag."""
    entries = sorted(name for name in os.listdir(directory) if name != LOCK_FILE)
    manifest = read_manifest(directory)
    if resume:
        if not holds_run(directory):
            raise CheckpointError(f'--resume: {directory} holds no run to resume')
        if manifest is None:  # a run of an older version: what it holds of a run becomes the run's
            for name in entries:
                if name in RUN_FILES + (INPUTS_FILE, SPLIT_FILE):
                    record(directory, name)
        return
    if not entries:
        return
    if manifest is None:
        raise CheckpointError(f'{directory} is not empty and holds no run (no {MANIFEST_FILE}): {_listed(entries)}; '
                              'refusing to start a run there, --overwrite deletes only what a run wrote; '
                              'choose a new or empty --output_dir')
    if not any(os.path.lexists(os.path.join(directory, name)) or leftovers_of(directory, name)
               for name in manifest if name in RESULTS):
        logger.warning('%s holds a run that stopped before its first checkpoint: replacing it', directory)
    elif not overwrite:
        raise CheckpointError(f'{directory} already holds a run; continue it with --resume, replace it '
                              'with --overwrite, or choose another --output_dir')
    else:
        logger.warning('--overwrite: deleting the previous run in %s (only the files it wrote)', directory)
    remove_run(directory, manifest)


def remove_run(directory, manifest):
    """Delete the manifest's entries (and the leftovers of a crash while one was replaced)."""
    for name in manifest:
        for entry in [name] + leftovers_of(directory, name):
            remove_entry(os.path.join(directory, entry))
    remove_entry(os.path.join(directory, MANIFEST_FILE))
    kept = sorted(set(os.listdir(directory)) - {LOCK_FILE})
    if kept:
        logger.info('kept what the run did not write in %s: %s', directory, _listed(kept))


def _listed(names, limit=8):
    more = len(names) - limit
    return ', '.join(names[:limit]) + (f' and {more} more' if more > 0 else '')


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


# The recipe fields of 0.7 and before: always recorded. The later ones (the task's settings) are
# recorded only when set, so a run of 0.7 resumes with the same fingerprint.
LEGACY_RECIPE = ('text_column', 'label_column', 'test_size', 'valid_size', 'bert', 'max_len', 'batch_size',
                 'learning_rate', 'warmup_ratio', 'weight_decay', 'epsilon', 'max_grad_norm', 'accumulate',
                 'dropout', 'seed', 'dtype', 'bucketing', 'select_metric', 'tokenizer_vocab_size')


def recipe(config):
    """The settings that shape the model a run produces (TrainConfig fields marked ``recipe``);
    --resume refuses to change them mid-run."""
    defaults = {item.name: item.default for item in dataclasses.fields(TrainConfig)}
    return {name: getattr(config, name) for name in recipe_fields(TrainConfig)
            if name in LEGACY_RECIPE or getattr(config, name) != defaults[name]}


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
            'recipe': recipe(config)}
