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
6. a download into (3) if given, else (5): from ``base_url``/``$KOBERT_BASE_URL`` first, then
   from the registry's mirrors (skipped when ``$KOBERT_GLUON_NO_MIRRORS`` is set).

A file is only ever returned after its md5 has been checked. A file that fails the check is
reported with where it was found, its md5 and the expected one; only a corrupt file in the
download folder is replaced by a fresh download.

Downloads have a connect timeout, a read timeout and an overall deadline, write into a
``.part`` file that is removed on any failure, and run under a per-file lock whose waiters
give up after a bounded time. The lock file records its holder (pid, host); a lock whose
holder died is taken over. Each limit is a module constant, overridable by an env variable.
"""

import contextlib
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from tqdm import tqdm

from ..errors import AssetError

try:
    import fcntl
except ImportError:  # Windows: downloads still work, only without the cross-process lock.
    fcntl = None

logger = logging.getLogger(__name__)

KOBERT_HOME_ENV = 'KOBERT_HOME'
CACHE_DIR_ENV = 'KOBERT_GLUON_CACHE'
BASE_URL_ENV = 'KOBERT_BASE_URL'
LEGACY_DIRS_ENV = 'KOBERT_GLUON_LEGACY_DIRS'
NO_MIRRORS_ENV = 'KOBERT_GLUON_NO_MIRRORS'
LEGACY_DIRS = ('.cache', os.path.join('~', 'kobert'))  # KoBERT v0.2.x, v0.1.x defaults

# Limits in seconds: (default, env variable that overrides it).
CONNECT_TIMEOUT = (15.0, 'KOBERT_GLUON_CONNECT_TIMEOUT')
READ_TIMEOUT = (60.0, 'KOBERT_GLUON_READ_TIMEOUT')
DOWNLOAD_DEADLINE = (1800.0, 'KOBERT_GLUON_DOWNLOAD_DEADLINE')  # the 350 MB params at 200 kB/s
LOCK_TIMEOUT = (1900.0, 'KOBERT_GLUON_LOCK_TIMEOUT')  # a healthy download finishes before this
LOCK_POLL_S = 0.2
CHUNK_SIZE = 1 << 20
HUGGINGFACE_LEGACY_URL = 'https://huggingface.co/skt/kobert-base-v1/resolve/main/legacy/'


class ChecksumError(AssetError):
    """A file exists but its md5 differs from the registry's."""

    def __init__(self, path: str, expected: str, actual: str, hint: str = ''):
        self.path = path
        self.expected = expected
        self.actual = actual
        message = f'found {path}, md5 {actual}, expected {expected}.'
        super().__init__(f'{message} {hint}' if hint else message)


class AssetNotFoundError(AssetError):
    """A file is not present locally and could not be downloaded."""

    def __init__(self, filename: str, target_dir: str,
                 attempts: Optional[List[Tuple[str, str]]] = None, hint: str = ''):
        self.filename = filename
        self.target_dir = target_dir
        self.attempts = list(attempts or [])
        if self.attempts:
            cause = f'could not be downloaded (tried: {self.attempts_text()})'
        else:
            cause = 'was not found and downloading is disabled'
        super().__init__(
            f'KoBERT file {filename} {cause}. Download it manually and put it in '
            f'{target_dir}, or set {KOBERT_HOME_ENV} to a directory that holds it.'
            + (f' {hint}' if hint else ''))

    def attempts_text(self) -> str:
        return '; '.join(f'{url} ({reason})' for url, reason in self.attempts)


class _IncompleteDownload(AssetError):
    """The server closed the connection before sending the whole body, or was too slow."""


@dataclass(frozen=True)
class Asset:
    filename: str
    md5: str  # a full md5 or a prefix of one (KoBERT's own code checked 10 hex chars)
    urls: Tuple[str, ...] = ()
    hint: str = ''  # added to errors: what else the user can do

    def __post_init__(self):
        md5 = self.md5.lower()
        if not 10 <= len(md5) <= 32 or any(c not in '0123456789abcdef' for c in md5):
            raise ValueError(f'md5 of {self.filename} must be 10 to 32 hex chars, '
                             f'got {self.md5!r}')
        object.__setattr__(self, 'md5', md5)
        object.__setattr__(self, 'urls', tuple(self.urls))

    def matches(self, actual_md5: str) -> bool:
        return actual_md5.lower().startswith(self.md5)


def _legacy_asset(filename: str, md5: str, hint: str = '') -> Asset:
    return Asset(filename, md5, urls=(HUGGINGFACE_LEGACY_URL + filename,), hint=hint)


OWN_WEIGHTS_HINT = ('To use your own weights instead, pass a params file in the bert_12_768_12 '
                    'layout as get_mxnet_kobert_model(model_file=PATH) or kobert-gluon train '
                    '--init_from PATH: its md5 is not checked, its parameter names and shapes are.')

ASSETS = {
    'spiece': _legacy_asset('kobert_news_wiki_ko_cased-1087f8699e.spiece',
                            'ae5711deb3b6bd269e853c543e87f9f1'),
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


def setting(limit: Tuple[float, str]) -> float:
    default, env = limit
    value = os.environ.get(env)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise AssetError(f'{env}={value!r}: expected a number of seconds') from None
    if not seconds > 0:
        raise AssetError(f'{env}={value!r}: must be a positive number of seconds')
    return seconds


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


def _download(asset: Asset, cache_dir: str, manual_dir: str, urls: List[str]) -> str:
    target = os.path.join(cache_dir, asset.filename)
    attempts = []
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with _exclusive_lock(target + '.lock'):
            # Another process may have completed the download while we waited.
            if os.path.exists(target) and asset.matches(md5sum(target)):
                return target
            _remove_stale_partials(asset, cache_dir)
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
    raise AssetNotFoundError(asset.filename, manual_dir, attempts or [('-', 'no URL known')],
                             hint=asset.hint)


# ---------------------------------------------------------------------------- the download lock

def _holder_record() -> dict:
    return {'pid': os.getpid(), 'host': socket.gethostname(), 'since': time.time()}


def _read_holder(lock_file) -> Optional[dict]:
    try:
        lock_file.seek(0)
        holder = json.loads(lock_file.read() or 'null')
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe_holder(holder: Optional[dict]) -> str:
    if not holder:
        return 'held by an unknown process'
    return f'held by pid {holder.get("pid")} on host {holder.get("host")}'


def _holder_is_dead(holder: Optional[dict]) -> bool:
    """True only when the holder ran on this host and its pid no longer exists."""
    if not holder or holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int):
        return False
    try:
        os.kill(holder['pid'], 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, owned by someone else
        return False
    return False


@contextlib.contextmanager
def _exclusive_lock(lock_path: str) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    lock_file = _acquire(lock_path, time.monotonic() + setting(LOCK_TIMEOUT))
    try:
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(json.dumps(_holder_record()))
        lock_file.flush()
        yield
    finally:
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        lock_file.close()


def _acquire(lock_path: str, deadline: float):
    """The locked lock file. Waits until ``deadline``; takes over a lock whose holder died.

    The file is never removed on release: a process that opened it could otherwise lock a
    deleted inode while a newcomer locks a fresh one. A takeover does remove it, so every
    waiter checks after locking that the path still names the inode it holds.
    """
    announced = False
    while True:
        lock_file = open(lock_path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, inode = _read_holder(lock_file), os.fstat(lock_file.fileno()).st_ino
            lock_file.close()
            if _holder_is_dead(holder):
                # flock is freed when its holder exits, so a dead holder's lock lives on only
                # in a child that inherited the descriptor; that child is not downloading.
                logger.warning('Taking over %s: its holder (pid %s on %s) is no longer running.',
                               lock_path, holder['pid'], holder['host'])
                _unlink_if_inode(lock_path, inode)
                continue
            if time.monotonic() >= deadline:
                raise AssetError(
                    f'Gave up waiting for the download lock {lock_path}, {_describe_holder(holder)}, '
                    f'after {setting(LOCK_TIMEOUT):g} s ({LOCK_TIMEOUT[1]}). If no download is running, '
                    f'delete the lock file.') from None
            if not announced:
                logger.info('Waiting for another download into %s (%s)', lock_path, _describe_holder(holder))
                announced = True
            time.sleep(LOCK_POLL_S)
            continue
        if _same_inode(lock_file, lock_path):
            return lock_file
        lock_file.close()  # taken over (removed) while we were locking it; lock the new one


def _same_inode(lock_file, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(lock_file.fileno()).st_ino
    except FileNotFoundError:
        return False


def _unlink_if_inode(path: str, inode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_ino == inode:
            os.unlink(path)


def _remove_stale_partials(asset: Asset, directory: str) -> None:
    """``.part`` files of this asset left by a killed process (we hold its lock now)."""
    prefix = f'.{asset.filename}.'
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith('.part'):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
                logger.info('Removed a stale partial download %s', name)


# ---------------------------------------------------------------------------- HTTP with timeouts

class _ReadTimeout:
    """After the TCP (and TLS) connect, which runs under the connect timeout, every read
    gets the read timeout."""

    def connect(self):
        super().connect()
        self.sock.settimeout(setting(READ_TIMEOUT))


class _HTTPConnection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=ssl.create_default_context())


def _open(url: str):
    opener = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)
    return opener.open(url, timeout=setting(CONNECT_TIMEOUT))


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
    """Copy the body of ``url`` into ``sink`` before the download deadline; return its md5."""
    deadline_s = setting(DOWNLOAD_DEADLINE)
    deadline = time.monotonic() + deadline_s
    digest = hashlib.md5()
    received = 0
    with _open(url) as response:
        length = response.headers.get('Content-Length')
        expected_size = int(length) if length and length.isdigit() else None
        with tqdm(total=expected_size, desc=label, unit='B', unit_scale=True,
                  unit_divisor=1024, disable=None, leave=False) as progress:
            # read1 returns what has arrived, so a server that trickles bytes meets the deadline.
            for chunk in iter(lambda: response.read1(CHUNK_SIZE), b''):
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress.update(len(chunk))
                if time.monotonic() > deadline:
                    raise _IncompleteDownload(
                        f'too slow: {received} of {expected_size or "?"} bytes after the '
                        f'{deadline_s:g} s deadline ({DOWNLOAD_DEADLINE[1]})')
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
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f'timed out ({err or "no data"}; {CONNECT_TIMEOUT[1]}, {READ_TIMEOUT[1]})'
    return str(err) or type(err).__name__
