"""Downloading one KoBERT file: connect and read timeouts, an overall deadline, a ``.part`` file
removed on any failure, md5-checked before it is renamed into place, under the file's lock."""
import contextlib
import hashlib
import http.client
import logging
import os
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from typing import List

from tqdm import tqdm

from ..errors import AssetError
from .files import (CHUNK_SIZE, CONNECT_TIMEOUT, DOWNLOAD_DEADLINE, READ_TIMEOUT, Asset, AssetNotFoundError,
                    ChecksumError, _IncompleteDownload, md5sum, setting)
from .lock import _exclusive_lock

logger = logging.getLogger(__name__)


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


def _remove_stale_partials(asset: Asset, directory: str) -> None:
    """``.part`` files of this asset left by a killed process (we hold its lock now)."""
    prefix = f'.{asset.filename}.'
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith('.part'):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
                logger.info('Removed a stale partial download %s', name)


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
