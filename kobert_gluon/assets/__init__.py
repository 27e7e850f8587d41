"""Registry, lookup and atomic download of the KoBERT files. Imports nothing heavy (no mxnet).

Every file is looked up in this order (see :func:`resolve`); the first folder that has it wins:

1. an explicit ``path``;
2. a user directory: the ``kobert_dir`` argument, else ``$KOBERT_HOME``;
3. the ``cache_dir`` argument; the old API (``kobert.get_tokenizer(cachedir=...)``,
   ``get_mxnet_kobert_model(cachedir=...)``) remembers it for later calls in the process;
4. the original package's folders: ``./.cache`` (of the current directory; KoBERT v0.2.x) and
   ``~/kobert`` (KoBERT v0.1.x); ``$KOBERT_GLUON_LEGACY_DIRS`` replaces this list
   (``os.pathsep``-separated, empty: none);
5. kobert_gluon's cache, :func:`default_cache_dir`;
6. the copies shipped in the package (:func:`packaged_dirs`: KoBERT's ``.spiece`` tokenizer, so
   ``get_tokenizer()`` works offline);
7. a download into (3) if given, else (5): from ``base_url``/``$KOBERT_BASE_URL`` first, then
   from the registry's mirrors (skipped when ``$KOBERT_GLUON_NO_MIRRORS`` is set).

A file is only ever returned after its md5 has been checked. A file that fails the check is
reported with where it was found, its md5 and the expected one; only a corrupt file in the
download folder is replaced by a fresh download.

Downloads have a connect timeout, a read timeout and an overall deadline, write into a
``.part`` file that is removed on any failure, and run under a per-file lock whose waiters
give up after a bounded time. The lock file records its holder (pid, host); a lock whose
holder died is taken over. Each limit is a module constant, overridable by an env variable.
"""

import logging
import os
from typing import List, Optional, Tuple

from ..errors import AssetError
from ..fileio import package_file

from .download import _download
from .files import CACHE_DIR_ENV, KOBERT_HOME_ENV, Asset, AssetNotFoundError, ChecksumError, md5sum
from .files import CONNECT_TIMEOUT, DOWNLOAD_DEADLINE, LOCK_TIMEOUT, READ_TIMEOUT, setting  # noqa: F401  (public)

logger = logging.getLogger(__name__)

BASE_URL_ENV = 'KOBERT_BASE_URL'
LEGACY_DIRS_ENV = 'KOBERT_GLUON_LEGACY_DIRS'
NO_MIRRORS_ENV = 'KOBERT_GLUON_NO_MIRRORS'
NO_PACKAGED_ENV = 'KOBERT_GLUON_NO_PACKAGED'
LEGACY_DIRS = ('.cache', os.path.join('~', 'kobert'))  # KoBERT v0.2.x, v0.1.x defaults
HUGGINGFACE_LEGACY_URL = 'https://huggingface.co/skt/kobert-base-v1/resolve/main/legacy/'


def _legacy_asset(filename: str, md5: str, hint: str = '') -> Asset:
    return Asset(filename, md5, urls=(HUGGINGFACE_LEGACY_URL + filename,), hint=hint)


# Said wherever KoBERT's own weights are missing or damaged: what else a newcomer can do.
SMALL_BERT_HINT = ("Without KoBERT's files, kobert-gluon train --bert small trains a small BERT that "
                   'starts from the Korean checkpoint shipped in the package (no download).')
OWN_WEIGHTS_HINT = (SMALL_BERT_HINT + ' To use your own weights instead, pass a params file in the '
                    'bert_12_768_12 layout as get_mxnet_kobert_model(model_file=PATH) or kobert-gluon train '
                    '--init_from PATH: its md5 is not checked, its parameter names and shapes are.')
ASSETS = {
    'spiece': _legacy_asset('kobert_news_wiki_ko_cased-1087f8699e.spiece',
                            'ae5711deb3b6bd269e853c543e87f9f1', hint=SMALL_BERT_HINT),
    'sp_model_v01': _legacy_asset('tokenizer_78b3253a26.model',
                                  '78b3253a26b9e6937c25a1c1f33fbeba'),
    'vocab_v01': _legacy_asset('kobertvocab_f38b8a4d6d.json',
                               'f38b8a4d6dcc3e684fc6df2673ec05bb'),
    'mxnet_params': _legacy_asset('mxnet_kobert_45b6957552.params', '45b6957552',
                                  hint=OWN_WEIGHTS_HINT),
}
_remembered_cache_dir = None  # see remember_cache_dir


def default_cache_dir() -> str:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg_cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
    return os.path.abspath(os.path.join(os.path.expanduser(xdg_cache), 'kobert_gluon'))


def legacy_dirs() -> List[str]:
    """The original package's default folders, absolute (``./.cache`` is of the current directory)."""
    value = os.environ.get(LEGACY_DIRS_ENV)
    dirs = LEGACY_DIRS if value is None else [d for d in value.split(os.pathsep) if d]
    return [_absolute(d) for d in dirs]


def remember_cache_dir(cache_dir: Optional[str]) -> Optional[str]:
    """The old API's ``cachedir``: a folder given once is searched first by later calls too.

    KoBERT's notebook passes ``cachedir=".cache"`` to get_mxnet_kobert_model, then calls
    ``get_tokenizer()`` without it and expects the same file. Returns the folder to use now.
    """
    global _remembered_cache_dir
    if cache_dir:
        _remembered_cache_dir = _absolute(cache_dir)
    return _remembered_cache_dir


def resolve(name: str, path: Optional[str] = None, kobert_dir: Optional[str] = None,
            cache_dir: Optional[str] = None, download: bool = True,
            base_url: Optional[str] = None) -> str:
    """Return the absolute path of the verified file registered as ``name``.

    Raises :class:`ChecksumError` when a file found is corrupt and
    :class:`AssetNotFoundError` when the file is absent and cannot be downloaded.
    """
    return fetch(lookup(name), path, kobert_dir, cache_dir, download, base_url)[0]


def fetch(asset: Asset, path: Optional[str] = None, kobert_dir: Optional[str] = None,
          cache_dir: Optional[str] = None, download: bool = True,
          base_url: Optional[str] = None) -> Tuple[str, bool]:
    """``(path, found_locally)`` of ``asset``, looked up in the order of the module docstring."""
    if path:
        return _verified(asset, _absolute(path), f'Replace it with an intact copy of {asset.filename}.'), True
    user_dir = kobert_dir or os.environ.get(KOBERT_HOME_ENV)
    given_cache = [_absolute(cache_dir)] if cache_dir else []
    target_dir = (given_cache or [default_cache_dir()])[0]
    folders = ([_absolute(user_dir)] if user_dir else []) + given_cache + legacy_dirs() + [default_cache_dir()]
    folders += packaged_dirs()  # read-only copies shipped in the package (KoBERT's tokenizer)
    corrupt = None
    for folder in dict.fromkeys(folders):
        candidate = os.path.join(folder, asset.filename)
        if not os.path.isfile(candidate):
            continue
        if folder != target_dir or not download:
            return _verified(asset, candidate, _corrupt_hint(asset, candidate)), True
        actual = md5sum(candidate)
        if asset.matches(actual):
            return candidate, True
        corrupt = ChecksumError(candidate, asset.md5, actual)
        logger.warning('%s; downloading it again.', corrupt)
    # The folder named in errors is where the user is expected to look first.
    manual_dir = _absolute(user_dir) if user_dir else target_dir
    if not download:
        raise AssetNotFoundError(asset.filename, manual_dir, hint=asset.hint)
    try:
        return _download(asset, target_dir, manual_dir, _candidate_urls(asset, base_url)), False
    except AssetNotFoundError as failed:
        if corrupt is None:
            raise
        raise ChecksumError(corrupt.path, corrupt.expected, corrupt.actual,
                            hint=f'Downloading a fresh copy failed ({failed.attempts_text()}). '
                                 + _corrupt_hint(asset, corrupt.path)) from failed


def packaged_files_enabled() -> bool:
    """Whether the files shipped in the package are used: KoBERT's tokenizer and the pretrained
    checkpoint. ``$KOBERT_GLUON_NO_PACKAGED`` set to anything non-empty turns them off (the tests do,
    to see a machine without them)."""
    return not os.environ.get(NO_PACKAGED_ENV)


def packaged_dirs() -> List[str]:
    """The package's own copies (``resources/kobert``: KoBERT's .spiece tokenizer, Apache-2.0, see its NOTICE)."""
    return [package_file('resources', 'kobert')] if packaged_files_enabled() else []


def lookup(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(f'Unknown KoBERT asset {name!r}; known assets: '
                         f'{", ".join(sorted(ASSETS))}.') from None


def asset_for_filename(filename: str) -> Optional[Asset]:
    return next((asset for asset in ASSETS.values() if asset.filename == filename), None)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _corrupt_hint(asset: Asset, path: str) -> str:
    return (f'Delete {path} or replace it with an intact copy of {asset.filename}.'
            + (f' {asset.hint}' if asset.hint else ''))


def _verified(asset: Asset, path: str, hint: str) -> str:
    if not os.path.isfile(path):
        raise AssetError(f'KoBERT file {path} does not exist or is not a file.')
    actual = md5sum(path)
    if not asset.matches(actual):
        raise ChecksumError(path, asset.md5, actual,
                            hint=hint + (f' {asset.hint}' if asset.hint and asset.hint not in hint else ''))
    return path


def _candidate_urls(asset: Asset, base_url: Optional[str]) -> List[str]:
    base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    urls = [] if os.environ.get(NO_MIRRORS_ENV) else list(asset.urls)
    if base_url:
        urls.insert(0, f'{base_url.rstrip("/")}/{asset.filename}')
    return urls


# ---------------------------------------------------------------------------- the download lock


# ---------------------------------------------------------------------------- HTTP with timeouts


