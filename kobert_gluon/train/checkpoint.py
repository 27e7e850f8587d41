"""Optimizer state on disk without pickle, and reading checkpoint files with clear errors.

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

import mxnet as mx

from ..errors import CheckpointError, last_line
from ..fileio import atomic_path, write_json

logger = logging.getLogger(__name__)

STATE_ARRAYS = 'optimizer.params'
STATE_JSON = 'optimizer.json'
LEGACY_PICKLE = 'trainer.states'
FORMAT = 'kobert_gluon.optimizer'
FORMAT_VERSION = 1


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
