"""Atomic writes: a reader sees the old file or the new one, never half of one."""
import contextlib
import json
import os
import shutil
import tempfile
from importlib import resources

PACKAGE = 'kobert_gluon'


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _readable(path, mode):
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual umask mode."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``."""
    path = os.fspath(path)
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
    ``.old`` copy that the next write cleans up).
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    _readable(tmp, 0o777)
    old = path + '.old'
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, obj):
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as out:
            json.dump(obj, out, ensure_ascii=False, indent=2)


def read_json(path):
    with open(path, encoding='utf-8') as source:
        return json.load(source)


def file_inside(directory, folder, name, error, source, what='the directory'):
    """The path of ``folder/name`` under ``directory``, for a ``name`` read from a file anyone
    may have written (config.json, kobert_gluon.json, pretrain.json): only a plain file name,
    never an absolute path, ``..``, a subfolder or a symlink, so it cannot make us read (and
    copy into a model or export) a file from outside. ``error(message)`` is raised otherwise."""
    base = os.path.realpath(os.path.join(directory, folder))
    path = os.path.join(base, name) if isinstance(name, str) else ''
    if (not isinstance(name, str) or os.path.basename(name) != name or name in ('', '.', '..')
            or os.path.islink(path) or os.path.dirname(os.path.realpath(path)) != base):
        raise error(f'{source}: tokenizer file {name!r} is not a plain file name inside {folder}/; '
                    f'refusing to read outside {what}')
    return path


def package_file(*parts):
    """Path of a file shipped inside the package (``resources/...``, ``serve/static/...``)."""
    return str(resources.files(PACKAGE).joinpath(*parts))
