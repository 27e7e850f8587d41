"""The per-file download lock: one process fetches a file, the others wait a bounded time; the
lock file names its holder (pid, host), and a dead holder's lock is taken over."""
import contextlib
import json
import logging
import os
import socket
import time
from typing import Iterator, Optional

from ..errors import AssetError
from .files import LOCK_POLL_S, LOCK_TIMEOUT, setting

try:
    import fcntl
except ImportError:  # Windows: downloads still work, only without the cross-process lock.
    fcntl = None

logger = logging.getLogger(__name__)


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
