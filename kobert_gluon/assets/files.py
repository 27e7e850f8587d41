"""What a KoBERT file is (:class:`Asset`), how it is checked (md5), the errors of finding one,
and the limits of fetching one (each a constant, overridable by an environment variable)."""
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import AssetError

logger = logging.getLogger(__name__)

KOBERT_HOME_ENV = 'KOBERT_HOME'
CACHE_DIR_ENV = 'KOBERT_GLUON_CACHE'
# Limits in seconds: (default, env variable that overrides it).
CONNECT_TIMEOUT = (15.0, 'KOBERT_GLUON_CONNECT_TIMEOUT')
READ_TIMEOUT = (60.0, 'KOBERT_GLUON_READ_TIMEOUT')
DOWNLOAD_DEADLINE = (1800.0, 'KOBERT_GLUON_DOWNLOAD_DEADLINE')  # the 350 MB params at 200 kB/s
LOCK_TIMEOUT = (1900.0, 'KOBERT_GLUON_LOCK_TIMEOUT')  # a healthy download finishes before this
LOCK_POLL_S = 0.2
CHUNK_SIZE = 1 << 20


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
            f'{target_dir}, or point --kobert_dir (kobert_dir= in Python) or {KOBERT_HOME_ENV} '
            f'at a directory that holds it.'
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
