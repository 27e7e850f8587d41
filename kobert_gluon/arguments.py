"""Checks of the Python API's arguments: one ConfigError naming the function and the argument,
instead of a traceback from deep inside pandas, numpy or MXNet. numpy scalars (``np.int64(8)``,
``np.str_('text')``) are accepted wherever Python's own types are. This module imports nothing heavy."""
import numbers
import os

from .errors import ConfigError


def _fail(where, name, value, expected):
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + '...'
    raise ConfigError(f'{where}: {name}={shown} ({type(value).__name__}) must be {expected}')


def _is_bool(value):
    """Python's bool and numpy's bool_ (which is not a bool subclass)."""
    return isinstance(value, bool) or type(value).__name__ == 'bool_'


def is_integer(value):
    """Python and numpy integers; never a bool."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def integer(where, name, value, minimum=None, maximum=None, optional=False):
    if value is None and optional:
        return None
    if not is_integer(value):
        _fail(where, name, value, 'an integer')
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f'at least {minimum}' if maximum is None else f'between {minimum} and {maximum}'
        _fail(where, name, value, f'an integer {bounds}')
    return value


def real(where, name, value, low=None, high=None, optional=False, open_interval=True):
    """A number (not a bool, not a string), inside (low, high) (or [low, high])."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Real) or _is_bool(value):
        _fail(where, name, value, 'a number')
    value = float(value)
    inside = (low is None or (value > low if open_interval else value >= low)) and \
             (high is None or (value < high if open_interval else value <= high))
    if not inside or value != value:
        _fail(where, name, value, f'a number between {low} and {high}')
    return value


def text(where, name, value, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str):  # np.str_ is a str
        _fail(where, name, value, 'a string')
    return str(value)


def flag(where, name, value):
    if not _is_bool(value):
        _fail(where, name, value, 'True or False')
    return bool(value)


def path(where, name, value, optional=False):
    """A file system path: str or os.PathLike, as a str."""
    if value is None and optional:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        _fail(where, name, value, 'a path (str or pathlib.Path)')
    return os.fspath(value)


def one_of(where, name, value, choices):
    if not isinstance(value, str) or value not in choices:
        _fail(where, name, value, f'one of {list(choices)}')
    return value


def instance(where, name, value, kinds, expected):
    if not isinstance(value, kinds):
        _fail(where, name, value, expected)
    return value


def iterable(where, name, value):
    """An iterable of items (a list, a generator): not a single string, bytes or dict."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, '__iter__'):
        _fail(where, name, value, 'a list (or other iterable)')
    return value


def strings(where, name, value):
    """A list or tuple of strings (not one string)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
            not all(isinstance(item, str) for item in value):
        _fail(where, name, value, 'a list of strings')
    return [str(item) for item in value]


def integers(where, name, value):
    """An array of integers (a list, numpy or MXNet array) as a numpy array."""
    import numpy as np
    if hasattr(value, 'asnumpy'):
        value = value.asnumpy()
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple, np.ndarray)):
        _fail(where, name, value, 'an array of integers (list, numpy or MXNet array)')
    array = np.asarray(value)
    if array.size and not np.issubdtype(array.dtype, np.integer) and \
            not (np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)):
        _fail(where, name, value, 'an array of integers (list, numpy or MXNet array)')
    return array


def model_or_dir(where, name, value):
    """A TextClassifier, or the path of a model directory."""
    if hasattr(value, 'label_map') and hasattr(value, 'model'):
        return value
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        _fail(where, name, value, 'a TextClassifier or a model directory path')
    return value
