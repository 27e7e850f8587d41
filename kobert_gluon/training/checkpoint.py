"""Checkpoints: one directory (``last/``) a run resumes from, written atomically, never pickled.

A checkpoint holds the weights, the optimizer state, the run's settings and ``state.json``,
written last and listing every other file's size and sha256, so a checkpoint cut short (or
changed later, even at the same size) is recognised and the newest complete one is found after
a crash in the middle of replacing one. Hashing costs about 1.5 s per 370 MB (KoBERT's
weights) when a checkpoint is written and when a run resumes.

Optimizer state on disk without pickle:

MXNet's ``Trainer.save_states``/``load_states`` pickle the updater, so loading a received
``trainer.states`` can run any code. We store the same information as two plain files:

    optimizer.params   every state NDArray (Adam's moments, ...) via ``mx.nd.save``
    optimizer.json     what we write and read ourselves: the optimizer's class, the
                       parameter names in trainer order, the update counts, and how each
                       parameter's arrays nest (BERTAdam keeps a (mean, var) tuple)

Loading checks the class, names and shapes against the live trainer, so a checkpoint of
another model or optimizer is refused instead of half-applied.
"""
import json
import logging
import os
import re
import shutil

import mxnet as mx

from ..errors import CheckpointError, last_line
from ..fileio import atomic_directory, atomic_path, sha256sum, write_json

logger = logging.getLogger(__name__)

STATE_ARRAYS = 'optimizer.params'
STATE_JSON = 'optimizer.json'
LEGACY_PICKLE = 'trainer.states'
FORMAT = 'kobert_gluon.optimizer'
FORMAT_VERSION = 1
STATE_FILE = 'state.json'
TRAIN_CONFIG_FILE = 'train_config.json'  # the run's settings, also kept in every checkpoint
PRETRAIN_CONFIG_FILE = 'pretrain_config.json'  # a pretraining run's settings


def save_checkpoint(directory, trainer, state, write_weights, settings=None):
    """Replace ``directory`` atomically: ``write_weights(tmp)`` writes the weights, then the
    optimizer state (no pickle), ``settings`` as train_config.json, and state.json last."""
    with atomic_directory(directory) as tmp:
        write_weights(tmp)
        save_trainer_state(trainer, tmp)
        if settings is not None:
            write_json(os.path.join(tmp, TRAIN_CONFIG_FILE), settings)
        write_state(tmp, state)


def load_checkpoint(directory, trainer, load_weights, required=(), allow_pickle=False):
    """The state :func:`save_checkpoint` wrote; ``load_weights(directory)`` restores the weights
    (its ValueError, MXNetError or OSError becomes a CheckpointError), then the optimizer."""
    state = read_state(directory)
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f'{os.path.join(directory, STATE_FILE)}: not a checkpoint of this kind (no {missing})')
    try:
        load_weights(directory)
    except (mx.base.MXNetError, AssertionError, ValueError, OSError) as error:
        raise CheckpointError(f'{directory}: weights cannot be loaded ({last_line(error)})') from error
    if has_trainer_state(directory):
        load_trainer_state(trainer, directory)
    elif os.path.isfile(os.path.join(directory, LEGACY_PICKLE)):
        if not allow_pickle:
            raise CheckpointError(f'{os.path.join(directory, LEGACY_PICKLE)} is a pickled optimizer state '
                                  '(kobert_gluon < 0.4); unpickling a file can run arbitrary code. Only if you made '
                                  'it yourself, resume with --allow_pickle_resume')
        load_legacy_pickle(trainer, directory)
    else:
        raise CheckpointError(f'{directory}: no optimizer state ({STATE_JSON})')
    return state


def save_trainer_state(trainer, directory):
    """Write ``optimizer.params`` and ``optimizer.json`` into ``directory``."""
    optimizer = trainer._optimizer
    updater = trainer._updaters[0]  # the updaters of all devices hold the same values
    arrays, layout = {}, {}
    for index, state in sorted(updater.states.items()):
        layout[str(index)] = _flatten(state, str(index), arrays)
    os.makedirs(directory, exist_ok=True)
    with atomic_path(os.path.join(directory, STATE_ARRAYS)) as tmp:
        mx.nd.save(tmp, {key: value.as_in_context(mx.cpu()) for key, value in arrays.items()})
    write_json(os.path.join(directory, STATE_JSON), {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'optimizer': type(optimizer).__name__,
        'param_names': [p.name for p in trainer._params],
        'num_update': int(optimizer.num_update),
        'begin_num_update': int(optimizer.begin_num_update),
        # per device id: parameter index -> how often it was updated (Adam's bias correction)
        'index_update_counts': {str(device): {str(i): int(n) for i, n in counts.items()}
                                for device, counts in optimizer._all_index_update_counts.items()},
        'layout': layout,
    })


def load_trainer_state(trainer, directory):
    """Restore what :func:`save_trainer_state` wrote; CheckpointError names the bad file."""
    meta_path = os.path.join(directory, STATE_JSON)
    arrays_path = os.path.join(directory, STATE_ARRAYS)
    meta = read_checkpoint_json(meta_path)
    if meta.get('format') != FORMAT or meta.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{meta_path}: not a {FORMAT} v{FORMAT_VERSION} file')
    optimizer = trainer._optimizer
    if meta.get('optimizer') != type(optimizer).__name__:
        raise CheckpointError(f"{meta_path}: optimizer state of {meta.get('optimizer')}, "
                              f'but this run uses {type(optimizer).__name__}')
    _check_names(meta.get('param_names') or [], [p.name for p in trainer._params], meta_path)
    arrays = load_arrays(arrays_path)
    try:
        states = {int(index): _unflatten(spec, arrays) for index, spec in meta['layout'].items()}
        counts = {int(device): {int(i): int(n) for i, n in per_device.items()}
                  for device, per_device in meta['index_update_counts'].items()}
        num_update, begin_num_update = int(meta['num_update']), int(meta['begin_num_update'])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f'{meta_path}: damaged ({last_line(error)})') from error
    _check_shapes(states, trainer._params, arrays_path)
    for updater, ctx in zip(trainer._updaters, trainer._contexts):
        updater.states = {index: _to_context(state, ctx) for index, state in states.items()}
        updater.states_synced = dict.fromkeys(states, True)
    optimizer.num_update, optimizer.begin_num_update = num_update, begin_num_update
    optimizer._all_index_update_counts = counts or {0: {}}
    optimizer._index_update_count = optimizer._all_index_update_counts.setdefault(0, {})


def has_trainer_state(directory):
    return os.path.isfile(os.path.join(directory, STATE_JSON))


def load_legacy_pickle(trainer, directory):
    """MXNet's pickled ``trainer.states``; only for files the user made themselves."""
    path = os.path.join(directory, LEGACY_PICKLE)
    logger.warning('loading the pickled optimizer state %s as explicitly allowed; '
                   'it will be rewritten without pickle at the next checkpoint', path)
    try:
        trainer.load_states(path)
    except Exception as error:  # pickle raises anything a damaged stream makes it raise
        raise CheckpointError(f'{path}: cannot be loaded ({last_line(error)})') from error


def read_checkpoint_json(path):
    try:
        with open(path, encoding='utf-8') as source:
            value = json.load(source)
    except FileNotFoundError:
        raise CheckpointError(f'{path}: missing') from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f'{path}: truncated or not JSON ({error})') from None
    if not isinstance(value, dict):
        raise CheckpointError(f'{path}: expected a JSON object')
    return value


def load_arrays(path):
    """``mx.nd.load`` with one line naming the file when it is missing or damaged."""
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: missing')
    try:
        return mx.nd.load(path)
    except mx.base.MXNetError as error:
        raise CheckpointError(f'{path}: truncated or not an MXNet array file ({last_line(error)})') from None


def _flatten(state, key, arrays):
    """Nested tuples/lists of NDArrays -> a JSON layout; the arrays go into ``arrays``."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        arrays[key] = state
        return key
    if isinstance(state, (tuple, list)):
        return {'tuple' if isinstance(state, tuple) else 'list':
                [_flatten(part, f'{key}/{i}', arrays) for i, part in enumerate(state)]}
    raise CheckpointError(f'cannot store optimizer state of type {type(state).__name__}')


def _unflatten(spec, arrays):
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in arrays:
            raise ValueError(f'array {spec!r} is missing')
        return arrays[spec]
    (kind, parts), = spec.items()
    values = [_unflatten(part, arrays) for part in parts]
    return tuple(values) if kind == 'tuple' else values


def _check_names(saved, names, path):
    """Same parameters in the same order. Gluon numbers block prefixes per process
    (``bertmodel0_`` now, ``bertmodel3_`` in a process that built three models first),
    so the numbers are not compared; the shapes are, in :func:`_check_shapes`."""
    def shape_of(name):
        return re.sub(r'\d+', '#', name)
    if len(saved) != len(names):
        raise CheckpointError(f'{path}: saved for {len(saved)} parameters, this model has {len(names)}')
    differing = [(a, b) for a, b in zip(saved, names) if shape_of(a) != shape_of(b)]
    if differing:
        raise CheckpointError(f'{path}: saved for other parameters (e.g. {differing[0][0]} where this '
                              f'model has {differing[0][1]})')


def _leaves(state):
    if isinstance(state, mx.nd.NDArray):
        return [state]
    if isinstance(state, (tuple, list)):
        return [leaf for part in state for leaf in _leaves(part)]
    return []


def _check_shapes(states, params, path):
    for index, state in states.items():
        if not 0 <= index < len(params):
            raise CheckpointError(f'{path}: state for parameter #{index}, but there are {len(params)}')
        param = params[index]
        for leaf in _leaves(state):
            if leaf.size != 1 and leaf.shape != param.shape:  # scalars: e.g. a step counter
                raise CheckpointError(f'{path}: state of {param.name} has shape {leaf.shape}, '
                                      f'the parameter {param.shape}')


def _to_context(state, ctx):
    if isinstance(state, mx.nd.NDArray):
        return state.as_in_context(ctx).copy()
    if isinstance(state, (tuple, list)):
        moved = [_to_context(part, ctx) for part in state]
        return tuple(moved) if isinstance(state, tuple) else moved
    return state



def checkpoint_files(checkpoint_dir):
    """Relative path -> {bytes, sha256} of every file under ``checkpoint_dir`` except the state file."""
    files = {}
    for root, _, names in os.walk(checkpoint_dir):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, checkpoint_dir)
            if relative != STATE_FILE:
                files[relative.replace(os.sep, '/')] = {'bytes': os.path.getsize(path), 'sha256': sha256sum(path)}
    return files


def write_state(checkpoint_dir, state):
    """Write ``state.json`` as the checkpoint's last file, listing every other file's size and sha256."""
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
    for relative, entry in sorted(files.items()):
        problem = file_damage(checkpoint_dir, relative, entry)
        if problem:
            return problem
    return None


def file_damage(directory, relative, entry):
    """None when ``directory/relative`` is as recorded: ``entry`` is its size (older versions)
    or ``{'bytes': size, 'sha256': hex}``; else what differs."""
    path = os.path.join(directory, relative)
    size, digest = (entry.get('bytes'), entry.get('sha256')) if isinstance(entry, dict) else (entry, None)
    if not os.path.isfile(path):
        return f'{path}: missing'
    if os.path.getsize(path) != size:
        return f'{path}: truncated or changed ({os.path.getsize(path)} bytes, expected {size})'
    if digest is not None and sha256sum(path) != digest:
        return f'{path}: changed after it was written (its sha256 differs from the one recorded in {STATE_FILE})'
    return None


def newest_checkpoint(directory, name='last'):
    """The most advanced complete checkpoint among ``name``, ``name.old`` and the temporary
    directories a crash during :func:`fileio.atomic_directory` leaves; it is moved to
    ``directory/name`` and the others are deleted. None when there is none; a damaged
    checkpoint that is the only one raises CheckpointError naming the damaged file."""
    candidates = checkpoint_candidates(directory, name)
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
    for path in checkpoint_candidates(directory, name):
        if path != target:
            shutil.rmtree(path, ignore_errors=True)


def checkpoint_candidates(directory, name):
    paths = [os.path.join(directory, name), os.path.join(directory, name + '.old')]
    if os.path.isdir(directory):
        paths += sorted(os.path.join(directory, entry) for entry in os.listdir(directory)
                        if entry.startswith(f'.{name}.') and entry.endswith('.tmp'))
    return [path for path in paths if os.path.isdir(path)]


def _progress(state):
    return (state.get('step', 0), state.get('epoch', 0), state.get('batches_done', 0))
