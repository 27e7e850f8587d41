"""The library's error classes, and cutting MXNet's C++ tracebacks down to what failed.

Every error a user can cause (a bad file, setting, model directory or checkpoint, a missing
download or device) is a :class:`KobertGluonError`; the CLI turns those into one line and exit
status 2. Anything else is a bug in this library. The subclasses also derive from the builtin
class callers caught before this module existed (``ValueError``, ``RuntimeError``), so old
``except ValueError`` code keeps working. This module imports nothing heavy.
"""


class KobertGluonError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(KobertGluonError, ValueError):
    """A setting (TrainConfig field, CLI flag, function argument) is invalid; names which."""


class DataError(KobertGluonError, ValueError):
    """A data file or a row in it cannot be used; the message names which."""


class ModelDirectoryError(KobertGluonError, ValueError):
    """A model directory is incomplete, inconsistent or unsafe; the message names the problem."""


class CheckpointError(KobertGluonError, ValueError):
    """A run directory or checkpoint cannot be used (corrupt, locked, from another run, unsafe)."""


class AssetError(KobertGluonError, RuntimeError):
    """A KoBERT file could not be found, downloaded or verified."""


class DeviceError(KobertGluonError, RuntimeError):
    """The requested device (GPU, number of GPUs) is not available in this mxnet build."""


class ConversionError(KobertGluonError, ValueError):
    """A checkpoint cannot be converted between transformers and gluonnlp layouts."""


class DistributedError(KobertGluonError, RuntimeError):
    """A distributed engine is missing, misconfigured, or lost a worker."""


class MissingExtraError(KobertGluonError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, extra, missing):
        self.extra = extra
        super().__init__(f'{missing} is not installed; install the optional extra: '
                         f'pip install "kobert_gluon[{extra}]"')


class StorageError(KobertGluonError, OSError):
    """A file could not be written (disk full, read-only folder, no permission); names the file
    and the cause (``os.strerror``). Earlier files written atomically are left intact."""

    def __str__(self):
        return str(self.args[0]) if self.args else super().__str__()


class NonFiniteError(KobertGluonError, ArithmeticError):
    """Training diverged: a loss or a weight is NaN or infinite (names the step or parameter)."""


def last_line(error):
    """The whole message of ``error`` on one line, never cut.

    MXNet's messages start with a C++ traceback (``Traceback ...``, ``Stack trace``, ``[bt] ...``)
    whose last non-empty line says what failed: only that line is kept. Any other message keeps
    every line, joined by spaces.
    """
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and not lines[0].startswith(('Traceback', 'Stack trace', '[')):
        return ' '.join(lines)
    return lines[-1]
