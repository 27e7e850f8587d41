"""Atomic writes: a reader sees the old file or the new one, never half of one.

Also what the layers above share about files they write: a write that fails (disk full,
read-only folder, no permission) is a :class:`StorageError` naming the file and the cause;
a run directory learns every top-level name written into it (:func:`recording_writes`); an
output folder (``convert``, ``export``) is replaced only when it is its tool's own
(:func:`owned_output`), keeping what others put there; and no output goes to ``/``, the home
folder or the current folder.
"""
import contextlib
import errno as errno_codes
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from importlib import resources

from .errors import DataError, KobertGluonError, StorageError, last_line

PACKAGE = 'kobert_gluon'
RUN_MANIFEST = 'run_manifest.json'  # a run directory's list of what the run wrote (training/rundir.py)
OUTPUT_RECORD = 'kobert_gluon_output.json'  # which tool wrote an output folder, and which of its entries
# Entries a kobert_gluon output folder (model directory, export, converted folder) consists of.
OUTPUT_NAMES = ('config.json', 'model.params', 'tokenizer', 'export.json', 'bert.params', 'bert_config.json',
                'kobert_gluon.json', 'model.safetensors', 'vocab.txt', 'tokenizer.json', 'tokenizer_config.json',
                'special_tokens_map.json', 'pytorch_model.bin')
STORAGE_ERRNOS = (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EROFS, errno_codes.EACCES, errno_codes.EPERM,
                  errno_codes.EIO, errno_codes.EFBIG)
HASH_CHUNK = 1 << 22

logger = logging.getLogger(__name__)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _readable(path, mode):
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual umask mode."""
    os.chmod(path, mode & ~_umask())


def _guess_errno(directory):
    """Why writing into ``directory`` failed when the error did not say (MXNet's writers)."""
    try:
        stats = os.statvfs(directory)
        if stats.f_flag & getattr(os, 'ST_RDONLY', 1):
            return errno_codes.EROFS
        if stats.f_bavail * stats.f_frsize < (1 << 20):
            return errno_codes.ENOSPC
    except OSError:
        return None
    return None if os.access(directory, os.W_OK) else errno_codes.EACCES


def _is_mxnet_error(error):
    mxnet_base = sys.modules.get('mxnet.base')
    return mxnet_base is not None and isinstance(error, mxnet_base.MXNetError)


def storage_error(path, error):
    """A :class:`StorageError` for a failed write of ``path``, or None when ``error`` is not
    about storage (a bug, or a bad input that has its own error)."""
    if isinstance(error, KobertGluonError):
        return None
    code = getattr(error, 'errno', None) if isinstance(error, OSError) else None
    if isinstance(error, OSError) and code not in STORAGE_ERRNOS:
        return None
    if code is None:
        if not _is_mxnet_error(error):
            return None
        code = _guess_errno(os.path.dirname(os.path.abspath(path)) or '.')
        if code is None and 'Write' not in str(error):
            return None
    cause = os.strerror(code) if code else last_line(error)
    result = StorageError(f'{path}: cannot write ({cause}); files written before are intact')
    result.errno, result.strerror, result.filename = code, cause, path
    return result


@contextlib.contextmanager
def storage_errors(path):
    """Turn a storage failure while writing ``path`` into a :class:`StorageError` naming it."""
    try:
        yield
    except Exception as error:
        converted = storage_error(path, error)
        if converted is None:
            raise
        raise converted from error


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``."""
    path = os.fspath(path)
    claim(path)
    with storage_errors(path):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
        os.close(handle)
        _readable(tmp, 0o666)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a fresh temporary directory beside ``path``; on success it becomes ``path``.

    An existing ``path`` is moved aside first and deleted only after the new one is in
    place, so a crash leaves either the old directory or the new one (plus a stale
    ``.old`` copy that the next write cleans up). Inside an :func:`owned_output` block, the
    entries of the old directory that are not its tool's files are carried over.
    """
    path = os.path.abspath(os.fspath(path))
    claim(path)
    owner = _OUTPUTS.get(os.path.realpath(path))
    with storage_errors(path):
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
        _readable(tmp, 0o777)
        old = path + '.old'
        try:
            yield tmp
            if owner:
                _write_output_record(tmp, owner)
            shutil.rmtree(old, ignore_errors=True)
            if os.path.exists(path):
                os.replace(path, old)
            os.replace(tmp, path)
            if owner:
                _carry_over(old, path, owner['keep'])
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, obj):
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as out:
            json.dump(obj, out, ensure_ascii=False, indent=2)


def read_json(path):
    """A JSON file's value. JSON nested deeper than Python's recursion limit (a hand-edited or
    hostile file) is a DataError naming the file, not a RecursionError."""
    with open(path, encoding='utf-8') as source:
        try:
            return json.load(source)
        except RecursionError:
            raise DataError(f'{path}: JSON nested too deeply to read (over {sys.getrecursionlimit()} levels)') from None


def sha256sum(path):
    """Hex sha256 of a file, read in 4 MiB blocks (about 1.5 s for KoBERT's 370 MB params)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as source:
        for block in iter(lambda: source.read(HASH_CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def file_inside(directory, folder, name, error, source, what='the directory'):
    """The path of ``folder/name`` under ``directory``, for a ``name`` read from a file anyone
    may have written (config.json, kobert_gluon.json, pretrain.json): only a plain file name,
    never an absolute path, ``..``, a subfolder or a symlink, so it cannot make us read (and
    copy into a model or export) a file from outside. ``folder`` itself must not lead outside
    ``directory`` either (a symlinked ``tokenizer/``). ``error(message)`` is raised otherwise."""
    root = os.path.realpath(directory)
    base = os.path.realpath(os.path.join(directory, folder))
    path = os.path.join(base, name) if isinstance(name, str) else ''
    if not _within(base, root):
        raise error(f'{source}: {folder}/ leads outside {what} (to {base}); refusing to read outside {what}')
    if (not isinstance(name, str) or os.path.basename(name) != name or name in ('', '.', '..')
            or os.path.islink(path) or os.path.dirname(os.path.realpath(path)) != base):
        raise error(f'{source}: tokenizer file {name!r} is not a plain file name inside {folder}/; '
                    f'refusing to read outside {what}')
    return path


def plain_file_inside(directory, name, error, what='the directory'):
    """``directory/name`` for a file that must be a real file of ``directory`` (model.params):
    a symlink leading outside is refused with ``error(message)``."""
    path = os.path.join(directory, name)
    real = os.path.realpath(path)
    if not _within(real, os.path.realpath(directory)):
        raise error(f'{path} leads outside {what} (to {real}); refusing to read outside {what}')
    return path


def _within(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def package_file(*parts):
    """Path of a file shipped inside the package (``resources/...``, ``serve/static/...``)."""
    return str(resources.files(PACKAGE).joinpath(*parts))


# ---------------------------------------------------------------------------- where outputs go

def check_output_location(path, error, flag='the output folder'):
    """``error`` for ``/``, the home folder and the current folder (symlinks followed): a run or
    output there would mix with, and on replacement threaten, everything else in it."""
    real = os.path.realpath(os.fspath(path))
    forbidden = {os.path.realpath(os.sep): 'the root folder', os.path.realpath(os.path.expanduser('~')): 'your home folder',
                 os.path.realpath(os.getcwd()): 'the current folder'}
    if real in forbidden:
        raise error(f'{path}: {flag} cannot be {forbidden[real]}; choose a new folder for it')


# Run directories whose writes are recorded: realpath -> function(top-level name).
_RECORDERS = {}


@contextlib.contextmanager
def recording_writes(directory, record):
    """While the block runs, every :func:`atomic_path`/:func:`atomic_directory` write under
    ``directory`` first calls ``record(name)`` with its top-level name (``last``, ``labels.json``)."""
    key = os.path.realpath(directory)
    _RECORDERS[key] = record
    try:
        yield
    finally:
        _RECORDERS.pop(key, None)


def claim(path):
    """Tell the run directory ``path`` is in (if one records its writes) that it is about to be written."""
    if not _RECORDERS:
        return
    full = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    for directory, record in list(_RECORDERS.items()):
        relative = os.path.relpath(full, directory)
        top = relative.split(os.sep)[0]
        if top not in ('.', '..') and not is_temporary(top):
            record(top)


def is_temporary(name):
    """The temporaries and leftovers of :func:`atomic_path` / :func:`atomic_directory`."""
    return (name.startswith('.') and name.endswith('.tmp')) or name.endswith('.old')


def leftovers_of(directory, name):
    """What a crash while ``name`` was being replaced can leave beside it."""
    return [entry for entry in os.listdir(directory)
            if entry == name + '.old' or (entry.startswith(f'.{name}.') and entry.endswith('.tmp'))]


def remove_entry(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


# Output folders being written by a tool: realpath -> {'tool', 'keep'}.
_OUTPUTS = {}


@contextlib.contextmanager
def owned_output(path, tool, overwrite, error):
    """Check that ``tool`` (``'convert'``, ``'export'``) may write the folder ``path``; while the
    block writes it (with :func:`atomic_directory`), what others put there is carried over
    and the folder is recorded as ``tool``'s in :data:`OUTPUT_RECORD`.

    Allowed: a new or empty folder, or ``tool``'s own earlier output. A folder holding a model,
    export or converted folder that ``tool`` did not write needs ``overwrite`` (then only its
    kobert_gluon files are replaced). A training run's folder, and any other non-empty folder,
    are refused.
    """
    path = os.path.abspath(os.fspath(path))
    check_output_location(path, error)
    keep = _replaceable(path, tool, overwrite, error)
    key = os.path.realpath(path)
    _OUTPUTS[key] = {'tool': tool, 'keep': keep}
    try:
        yield path
    finally:
        _OUTPUTS.pop(key, None)


def _replaceable(path, tool, overwrite, error):
    """The entries of ``path`` to keep when ``tool`` replaces it; ``error`` when it may not."""
    if not os.path.exists(path):
        return []
    if not os.path.isdir(path):
        raise error(f'{path}: exists and is not a directory')
    names = sorted(os.listdir(path))
    if not names:
        return []
    if RUN_MANIFEST in names:
        raise error(f'{path}: refusing to replace a training run\'s folder ({RUN_MANIFEST}) with a {tool} output; '
                    'choose a new or empty folder')
    record = _read_output_record(path)
    own = record['files'] if record else [name for name in names if name in OUTPUT_NAMES or _export_file(path, name)]
    if not own:
        raise error(f'{path}: refusing to replace a non-empty directory that holds no model or {tool} output '
                    f'({_listed(names)}); choose a new or empty directory')
    if (record or {}).get('tool', _legacy_tool(names)) != tool:
        if not overwrite:
            raise error(f'{path}: refusing to replace a model or output that {tool} did not write ({_listed(own)}); '
                        'choose a new or empty directory, or pass --overwrite to replace its model files')
        logger.warning('--overwrite: replacing the model files in %s (%s)', path, _listed(own))
    return [name for name in names if name not in own and name != OUTPUT_RECORD and not is_temporary(name)]


def _read_output_record(path):
    try:
        record = read_json(os.path.join(path, OUTPUT_RECORD))
    except (OSError, ValueError):
        return None
    files = record.get('files') if isinstance(record, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and os.path.basename(f) == f for f in files):
        return None
    return record


def _legacy_tool(names):
    """Which tool wrote a folder from before :data:`OUTPUT_RECORD` existed."""
    if 'export.json' in names:
        return 'export'
    if 'kobert_gluon.json' in names or 'bert.params' in names:
        return 'convert'
    return None


def _export_file(path, name):
    return name.endswith(('-symbol.json', '-0000.params')) and os.path.isfile(os.path.join(path, 'export.json'))


def _write_output_record(directory, owner):
    files = sorted(name for name in os.listdir(directory) if name != OUTPUT_RECORD)
    with open(os.path.join(directory, OUTPUT_RECORD), 'w', encoding='utf-8') as out:
        json.dump({'tool': owner['tool'], 'files': files}, out, indent=2)


def _carry_over(old, path, keep):
    for name in keep:
        source, target = os.path.join(old, name), os.path.join(path, name)
        if os.path.lexists(source) and not os.path.lexists(target):
            os.replace(source, target)


def _listed(names, limit=5):
    more = len(names) - limit
    return ', '.join(names[:limit]) + (f' and {more} more' if more > 0 else '')
