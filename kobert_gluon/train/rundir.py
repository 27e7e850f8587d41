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

from .checkpoint import read_checkpoint_json
from ..errors import CheckpointError
from ..fileio import write_json

try:
    import fcntl
except ImportError:  # not POSIX: runs are then not protected against a concurrent second run
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_FILE = 'run.lock'
CONFIG_FILE = 'train_config.json'
INPUTS_FILE = 'run_inputs.json'
SPLIT_FILE = 'split.json'
STATE_FILE = 'state.json'
# Any of these means the directory already holds (part of) a run (pretraining's too).
RUN_FILES = (CONFIG_FILE, 'labels.json', 'last', 'best', STATE_FILE, 'bert.params', 'pretrain.json')


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
            or bool(_candidates(directory, 'last')))


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
    write_json(os.path.join(directory, CONFIG_FILE), config)
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

def checkpoint_files(checkpoint_dir):
    """Relative path -> size of every file under ``checkpoint_dir`` except the state file."""
    sizes = {}
    for root, _, names in os.walk(checkpoint_dir):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, checkpoint_dir)
            if relative != STATE_FILE:
                sizes[relative.replace(os.sep, '/')] = os.path.getsize(path)
    return sizes


def write_state(checkpoint_dir, state):
    """Write ``state.json`` as the checkpoint's last file, listing every other file's size."""
    write_json(os.path.join(checkpoint_dir, STATE_FILE), {**state, 'files': checkpoint_files(checkpoint_dir)})


def read_state(checkpoint_dir):
    """The state :func:`write_state` wrote, without its file list."""
    state = read_checkpoint_json(os.path.join(checkpoint_dir, STATE_FILE))
    state.pop('files', None)
    return state


def damage(checkpoint_dir):
    """None when ``checkpoint_dir`` is complete, else what is wrong with which file.

    ``state.json`` is written last and lists every other file with its size, so a
    checkpoint cut short anywhere (or truncated later) is recognised as such.
    """
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    try:
        state = read_checkpoint_json(state_path)
    except CheckpointError as error:
        return str(error)
    files = state.get('files')
    if not isinstance(files, dict):
        return f'{state_path}: lists no files (damaged, or written by an older version)'
    for relative, size in sorted(files.items()):
        path = os.path.join(checkpoint_dir, relative)
        if not os.path.isfile(path):
            return f'{path}: missing'
        if os.path.getsize(path) != size:
            return f'{path}: truncated or changed ({os.path.getsize(path)} bytes, expected {size})'
    return None


def newest_checkpoint(directory, name='last'):
    """The most advanced complete checkpoint among ``name``, ``name.old`` and the temporary
    directories a crash during :func:`fileio.atomic_directory` leaves; it is moved to
    ``directory/name`` and the others are deleted. None when there is none; a damaged
    checkpoint that is the only one raises CheckpointError naming the damaged file."""
    candidates = _candidates(directory, name)
    complete, damaged = [], []
    for path in candidates:
        problem = damage(path)
        (damaged if problem else complete).append(problem or path)
    if not complete:
        if damaged:
            raise CheckpointError(f'cannot resume: {damaged[0]}')
        return None
    best = max(complete, key=lambda path: _progress(read_checkpoint_json(os.path.join(path, STATE_FILE))))
    target = os.path.join(directory, name)
    if best != target:
        logger.warning('resuming from %s (the newest complete checkpoint), not %s', best, target)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(best, target)
    for path in candidates:
        if path != best and os.path.exists(path):
            shutil.rmtree(path, ignore_errors=True)
    return target


def restore_interrupted(directory, name):
    """Put back ``name`` when a crash left only ``name.old`` (and clean the temporaries)."""
    target = os.path.join(directory, name)
    old = target + '.old'
    if not os.path.exists(target) and os.path.isdir(old):
        os.replace(old, target)
    for path in _candidates(directory, name):
        if path != target:
            shutil.rmtree(path, ignore_errors=True)


def _candidates(directory, name):
    paths = [os.path.join(directory, name), os.path.join(directory, name + '.old')]
    if os.path.isdir(directory):
        paths += sorted(os.path.join(directory, entry) for entry in os.listdir(directory)
                        if entry.startswith(f'.{name}.') and entry.endswith('.tmp'))
    return [path for path in paths if os.path.isdir(path)]


def _progress(state):
    return (state.get('step', 0), state.get('epoch', 0), state.get('batches_done', 0))
