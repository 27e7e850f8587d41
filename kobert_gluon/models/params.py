"""Parameter files of a BERT: loading with errors that name the file, checking the
``bert_12_768_12`` layout, saving a shared (tied) parameter once, and refusing NaN or Inf
weights wherever weights are saved, loaded or converted."""
import logging

import mxnet as mx
import numpy as np

from ..errors import ConfigError, NonFiniteError, last_line
from ..fileio import atomic_path

logger = logging.getLogger(__name__)


class ParamsFileError(ValueError):
    """MXNet cannot read the file as parameters (truncated, or not a params file at all)."""


def nonfinite_parameter(arrays):
    """The name of the first parameter holding a NaN or Inf value, else None. ``arrays``:
    name -> NDArray, numpy array or gluon Parameter."""
    for name, value in arrays.items():
        if isinstance(value, mx.gluon.Parameter):
            if value._data is None:  # pylint: disable=protected-access
                continue  # not initialised yet (deferred): nothing to check
            value = value.data()
        if isinstance(value, mx.nd.NDArray):
            finite = bool(mx.nd.contrib.isfinite(value.astype('float32')).min().asscalar())
        else:
            finite = bool(np.isfinite(np.asarray(value, dtype=np.float32)).all())
        if not finite:
            return name
    return None


def load_params(block, path, ctx, ignore_extra=False, allow_missing=False):
    """``load_parameters`` with an error that says which file does not fit which model: a
    :class:`ParamsFileError` when MXNet cannot parse the file, else a ValueError."""
    try:
        block.load_parameters(path, ctx=ctx, ignore_extra=ignore_extra, allow_missing=allow_missing,
                              cast_dtype=True)
    except mx.base.MXNetError as error:  # parsing fails with MXNetError; names and shapes with AssertionError
        raise ParamsFileError(f'{path}: parameters do not fit this model ({last_line(error)})') from error
    except (AssertionError, ValueError, OSError) as error:
        raise ValueError(f'{path}: parameters do not fit this model ({last_line(error)})') from error


# Parameters of bert_12_768_12 that a BERTModel without pooler/decoder/classifier leaves unused.
OPTIONAL_BERT_PARTS = ('pooler.', 'decoder.', 'classifier.')
LISTED_NAMES = 5


def check_bert_layout(bert, path):
    """ConfigError unless ``path`` holds every parameter of ``bert`` under gluonnlp's name,
    with its shape, and nothing but optional BERT heads besides."""
    try:
        saved = mx.nd.load(str(path))
    except (mx.base.MXNetError, OSError, ValueError) as error:
        raise ConfigError(f'{path}: not an MXNet parameter file ({last_line(error)})') from error
    if not isinstance(saved, dict):
        raise ConfigError(f'{path}: holds unnamed arrays, not the parameters of a BERT model')
    structural = named_parameters(bert)
    expected = {name: param.shape for name, param in structural.items()}
    # A shared parameter (the MLM decoder's weight is the word embedding) may be saved under
    # one of its names only, as save_parameters(deduplicate=True) does; MXNet loads it so.
    aliases = {id(param): names for param, names in parameter_aliases(bert)}
    problems = []
    missing = sorted(name for name, param in structural.items()
                     if not any(alias in saved for alias in aliases[id(param)]))
    if missing:
        problems.append(f'{len(missing)} missing ({_listed(missing)})')
    wrong = [f'{name} {tuple(saved[name].shape)} instead of {_shape_text(expected[name])}'
             for name in sorted(set(expected) & set(saved)) if not _fits(expected[name], saved[name].shape)]
    if wrong:
        problems.append(f'{len(wrong)} with other shapes ({_listed(wrong)})')
    unknown = sorted(name for name in set(saved) - set(expected) if not name.startswith(OPTIONAL_BERT_PARTS))
    if unknown:
        problems.append(f'{len(unknown)} unexpected ({_listed(unknown)})')
    if problems:
        raise ConfigError(f'{path} is not a BERT params file in the bert_12_768_12 layout this model needs '
                          f'(gluonnlp BERTModel names): parameters {"; ".join(problems)}')


def _fits(expected, shape):
    """0 in an expected shape is a dimension MXNet infers later (deferred init)."""
    return len(expected) == len(shape) and all(e in (0, s) for e, s in zip(expected, shape))


def _shape_text(shape):
    return str(tuple('?' if d == 0 else d for d in shape)).replace("'", '')


def _listed(items):
    more = len(items) - LISTED_NAMES
    return ', '.join(items[:LISTED_NAMES]) + (f' and {more} more' if more > 0 else '')


def save_bert_params(model, path, dtype='float32'):
    """``save_parameters`` in ``dtype``; the decoder's tied weight is stored once, under
    the embedding's name, so encoder-only models find it."""
    arrays = {aliases[0]: param._reduce().astype(dtype) for param, aliases in parameter_aliases(model)}
    bad = nonfinite_parameter(arrays)
    if bad:
        raise NonFiniteError(f'{path}: not saved: parameter {bad} holds NaN or Inf values (training diverged)')
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, arrays)


def named_parameters(block):
    """name -> Parameter, named as ``save_parameters`` names them (MXNet's private
    ``_collect_params_with_prefix``: the public ``collect_params`` uses other, prefixed names)."""
    return block._collect_params_with_prefix()  # pylint: disable=protected-access


def parameter_aliases(block):
    """``[(Parameter, [names])]`` in save order: a shared parameter (the MLM decoder's weight is
    the word embedding) appears once, with all its names, the first being the one saved."""
    aliases = {}
    for name, param in named_parameters(block).items():
        aliases.setdefault(id(param), (param, []))[1].append(name)
    return list(aliases.values())
