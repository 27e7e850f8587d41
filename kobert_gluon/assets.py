"""Registry, lookup and atomic download of the KoBERT files.

Every file is looked up in this order (see :func:`resolve`):

1. an explicit ``path``;
2. a user directory: the ``kobert_dir`` argument, else ``$KOBERT_HOME``;
3. the cache directory (:func:`default_cache_dir` unless ``cache_dir`` is given);
4. a download into the cache directory, from ``base_url``/``$KOBERT_BASE_URL`` first,
   then from the registry's mirrors, newest first.

A file is only ever returned after its md5 has been checked.  Files supplied by the
user (1 and 2) that fail the check raise :class:`ChecksumError` instead of being
skipped, because silently replacing a user's file would hide the real problem.
"""

import contextlib
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from tqdm import tqdm

from .errors import AssetError

try:
    import fcntl
except ImportError:  # Windows: downloads still work, only without the cross-process lock.
    fcntl = None

logger = logging.getLogger(__name__)

KOBERT_HOME_ENV = 'KOBERT_HOME'
CACHE_DIR_ENV = 'KOBERT_GLUON_CACHE'
BASE_URL_ENV = 'KOBERT_BASE_URL'

DOWNLOAD_TIMEOUT_S = 30
CHUNK_SIZE = 1 << 20
HUGGINGFACE_LEGACY_URL = 'https://huggingface.co/skt/kobert-base-v1/resolve/main/legacy/'


class ChecksumError(AssetError):
    """A file exists but its md5 differs from the registry's."""

    def __init__(self, path: str, expected: str, actual: str, hint: str = ''):
        self.path = path
        self.expected = expected
        self.actual = actual
        message = (f'Checksum mismatch for {path}: expected md5 {expected}, '
                   f'got {actual}.')
        super().__init__(f'{message} {hint}' if hint else message)


class AssetNotFoundError(AssetError):
    """A file is not present locally and could not be downloaded."""

    def __init__(self, filename: str, target_dir: str,
                 attempts: Optional[List[Tuple[str, str]]] = None):
        self.filename = filename
        self.target_dir = target_dir
        self.attempts = list(attempts or [])
        if self.attempts:
            tried = '; '.join(f'{url} ({reason})' for url, reason in self.attempts)
            cause = f'could not be downloaded (tried: {tried})'
        else:
            cause = 'was not found and downloading is disabled'
        super().__init__(
            f'KoBERT file {filename} {cause}. Download it manually and put it in '
            f'{target_dir}, or set {KOBERT_HOME_ENV} to a directory that holds it.')


class _IncompleteDownload(AssetError):
    """The server closed the connection before sending the whole body."""


@dataclass(frozen=True)
class Asset:
    filename: str
    md5: str  # a full md5 or a prefix of one (KoBERT's own code checked 10 hex chars)
    urls: Tuple[str, ...] = ()

    def __post_init__(self):
        md5 = self.md5.lower()
        if not 10 <= len(md5) <= 32 or any(c not in '0123456789abcdef' for c in md5):
            raise ValueError(f'md5 of {self.filename} must be 10 to 32 hex chars, '
                             f'got {self.md5!r}')
        object.__setattr__(self, 'md5', md5)
        object.__setattr__(self, 'urls', tuple(self.urls))

    def matches(self, actual_md5: str) -> bool:
        return actual_md5.lower().startswith(self.md5)


def _legacy_asset(filename: str, md5: str) -> Asset:
    return Asset(filename, md5, urls=(HUGGINGFACE_LEGACY_URL + filename,))


ASSETS = {
    'spiece': _legacy_asset('kobert_news_wiki_ko_cased-1087f8699e.spiece',
                            'ae5711deb3b6bd269e853c543e87f9f1'),
    'sp_model_v01': _legacy_asset('tokenizer_78b3253a26.model',
                                  '78b3253a26b9e6937c25a1c1f33fbeba'),
    'vocab_v01': _legacy_asset('kobertvocab_f38b8a4d6d.json',
                               'f38b8a4d6dcc3e684fc6df2673ec05bb'),
    'mxnet_params': _legacy_asset('mxnet_kobert_45b6957552.params', '45b6957552'),
}


def default_cache_dir() -> str:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg_cache = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
    return os.path.abspath(os.path.join(os.path.expanduser(xdg_cache), 'kobert_gluon'))


def md5sum(path: str) -> str:
    digest = hashlib.md5()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b''):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(name: str, path: Optional[str] = None, kobert_dir: Optional[str] = None,
            cache_dir: Optional[str] = None, download: bool = True,
            base_url: Optional[str] = None) -> str:
    """Return the absolute path of the verified file registered as ``name``.

    Raises :class:`ChecksumError` when a user-supplied file is corrupt and
    :class:`AssetNotFoundError` when the file is absent and cannot be downloaded.
    """
    asset = _lookup(name)
    if path:
        return _verified_user_file(asset, _absolute(path))

    user_dir = kobert_dir or os.environ.get(KOBERT_HOME_ENV)
    if user_dir:
        candidate = os.path.join(_absolute(user_dir), asset.filename)
        if os.path.exists(candidate):
            return _verified_user_file(asset, candidate)

    cache_dir = _absolute(cache_dir) if cache_dir else default_cache_dir()
    cached = os.path.join(cache_dir, asset.filename)
    # The directory named in errors is where the user is expected to look first.
    manual_dir = _absolute(user_dir) if user_dir else cache_dir
    if os.path.exists(cached):
        actual = md5sum(cached)
        if asset.matches(actual):
            return cached
        if not download:
            raise ChecksumError(cached, asset.md5, actual,
                                hint=f'Delete it or put a correct copy in {manual_dir}.')
        logger.warning('Cached %s is corrupt (expected md5 %s, got %s); downloading it again.',
                       cached, asset.md5, actual)
    elif not download:
        raise AssetNotFoundError(asset.filename, manual_dir)

    return _download(asset, cache_dir, manual_dir, _candidate_urls(asset, base_url))


def _lookup(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(f'Unknown KoBERT asset {name!r}; known assets: '
                         f'{", ".join(sorted(ASSETS))}.') from None


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _verified_user_file(asset: Asset, path: str) -> str:
    if not os.path.isfile(path):
        raise AssetError(f'KoBERT file {path} does not exist or is not a file.')
    actual = md5sum(path)
    if not asset.matches(actual):
        raise ChecksumError(path, asset.md5, actual,
                            hint=f'Replace it with an intact copy of {asset.filename}.')
    return path


def _candidate_urls(asset: Asset, base_url: Optional[str]) -> List[str]:
    base_url = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    urls = list(asset.urls)
    if base_url:
        urls.insert(0, f'{base_url.rstrip("/")}/{asset.filename}')
    return urls


def _download(asset: Asset, cache_dir: str, manual_dir: str, urls: List[str]) -> str:
    target = os.path.join(cache_dir, asset.filename)
    attempts = []
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with _exclusive_lock(target + '.lock'):
            # Another process may have completed the download while we waited.
            if os.path.exists(target) and asset.matches(md5sum(target)):
                return target
            for url in urls:
                try:
                    _fetch_into(url, target, asset)
                    return target
                except (OSError, http.client.HTTPException, ValueError, AssetError) as err:
                    logger.warning('Download of %s from %s failed: %s',
                                   asset.filename, url, _describe(err))
                    attempts.append((url, _describe(err)))
    except OSError as err:  # the cache directory itself is unusable
        attempts.append((cache_dir, f'cannot write cache: {_describe(err)}'))
    raise AssetNotFoundError(asset.filename, manual_dir, attempts or [('-', 'no URL known')])


@contextlib.contextmanager
def _exclusive_lock(lock_path: str) -> Iterator[None]:
    # The lock file is left behind on purpose: unlinking it would let a third
    # process lock a fresh inode while a second one still holds the old one.
    with open(lock_path, 'a') as lock_file:
        if fcntl is None:
            yield
            return
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info('Waiting for another process to finish downloading into %s', lock_path)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _fetch_into(url: str, target: str, asset: Asset) -> None:
    """Download ``url`` and atomically move it to ``target`` only if it verifies."""
    directory = os.path.dirname(target)
    partial = tempfile.NamedTemporaryFile(dir=directory, delete=False,
                                          prefix=f'.{asset.filename}.', suffix='.part')
    try:
        with partial:
            actual = _stream(url, partial, asset.filename)
        if not asset.matches(actual):
            raise ChecksumError(url, asset.md5, actual)
        # NamedTemporaryFile creates 0600; a shared cache must stay readable.
        os.chmod(partial.name, 0o644)
        os.replace(partial.name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial.name)
        raise
    logger.info('Downloaded %s from %s', target, url)


def _stream(url: str, sink, label: str) -> str:
    """Copy the body of ``url`` into ``sink``; return its md5."""
    digest = hashlib.md5()
    received = 0
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        length = response.headers.get('Content-Length')
        expected_size = int(length) if length and length.isdigit() else None
        with tqdm(total=expected_size, desc=label, unit='B', unit_scale=True,
                  unit_divisor=1024, disable=None, leave=False) as progress:
            for chunk in iter(lambda: response.read(CHUNK_SIZE), b''):
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress.update(len(chunk))
    # http.client returns a short body without complaint when the peer hangs up.
    if expected_size is not None and received != expected_size:
        raise _IncompleteDownload(f'truncated: received {received} of {expected_size} bytes')
    return digest.hexdigest()


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f'HTTP {err.code} {err.reason}'
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    if isinstance(err, ChecksumError):
        return f'md5 mismatch: expected {err.expected}, got {err.actual}'
    return str(err) or type(err).__name__
