"""Tests for kobert_gluon.assets against a real HTTP server on 127.0.0.1."""

import collections
import hashlib
import http.server
import itertools
import json
import logging
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from kobert_gluon import assets
from hangguard import hang_guard

PAYLOAD = random.Random(1234).randbytes(200 * 1024)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
TEST_NAME = 'test_payload'
TEST_FILENAME = 'test_payload_0123456789.bin'
TRICKLE_S = 0.25  # a stalled mirror sends one byte this often


class PayloadServer:
    """Serves PAYLOAD under /<mode>/<filename>; mode picks how it misbehaves."""

    def __init__(self):
        self.requests = collections.Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.02}, daemon=True)

    def url(self, mode):
        return f'http://127.0.0.1:{self._httpd.server_port}/{mode}'

    def count(self, mode):
        with self._lock:
            return self.requests[f'/{mode}/{TEST_FILENAME}']

    def total_requests(self):
        with self._lock:
            return sum(self.requests.values())

    def _record(self, path):
        with self._lock:
            self.requests[path] += 1

    def _handler_class(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server._record(self.path)
                mode, _, filename = self.path.strip('/').partition('/')
                if filename != TEST_FILENAME or mode == 'missing':
                    self.send_error(404)
                    return
                body = bytes(b ^ 0xFF for b in PAYLOAD) if mode == 'corrupt' else PAYLOAD
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                if mode == 'truncated':
                    # Promise the full length, then hang up halfway.
                    self.wfile.write(body[:len(body) // 2])
                    self.close_connection = True
                elif mode in ('trickle', 'silent'):
                    self._stall(body if mode == 'trickle' else b'')
                elif mode == 'slow':
                    for start in range(0, len(body), 20 * 1024):
                        self.wfile.write(body[start:start + 20 * 1024])
                        self.wfile.flush()
                        time.sleep(0.03)
                else:
                    self.wfile.write(body)

            def _stall(self, body):
                """One byte every TRICKLE_S ('trickle') or nothing at all ('silent')."""
                for byte in itertools.chain(body, itertools.repeat(None)):
                    if server._stopping.wait(TRICKLE_S):
                        return
                    if byte is not None:
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            return

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def server():
    with PayloadServer() as running:
        yield running


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / 'cache'


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, cache_dir):
    """Keep every test away from the user's home, env and the real mirrors.

    The test asset's mirrors are local servers, so mirrors stay on (conftest turns them off).
    """
    monkeypatch.delenv('KOBERT_HOME', raising=False)
    monkeypatch.delenv('KOBERT_BASE_URL', raising=False)
    monkeypatch.delenv('KOBERT_GLUON_NO_MIRRORS', raising=False)
    monkeypatch.setenv('KOBERT_GLUON_CACHE', str(cache_dir))
    register_test_asset(monkeypatch)


def register_test_asset(monkeypatch, urls=(), md5=PAYLOAD_MD5):
    registry = dict(assets.ASSETS)
    registry[TEST_NAME] = assets.Asset(TEST_FILENAME, md5, urls=tuple(urls))
    monkeypatch.setattr(assets, 'ASSETS', registry)


def write_file(directory, content=PAYLOAD):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TEST_FILENAME
    path.write_bytes(content)
    return path


def leftover_partials(directory):
    if not directory.exists():
        return []
    return [name for name in os.listdir(directory) if name.endswith('.part')]


def assert_nothing_cached(cache_dir):
    assert not (cache_dir / TEST_FILENAME).exists()
    assert leftover_partials(cache_dir) == []


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}/gone'


# --- registry -------------------------------------------------------------------------

def test_registry_lists_kobert_files_with_huggingface_mirror():
    assert assets.ASSETS['spiece'].filename == 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
    assert assets.ASSETS['mxnet_params'].md5 == '45b6957552'
    for name in ('spiece', 'sp_model_v01', 'vocab_v01', 'mxnet_params'):
        asset = assets.ASSETS[name]
        assert asset.urls[0] == (
            'https://huggingface.co/skt/kobert-base-v1/resolve/main/legacy/' + asset.filename)


def test_md5_prefix_is_accepted(monkeypatch, tmp_path):
    register_test_asset(monkeypatch, md5=PAYLOAD_MD5[:10])
    path = write_file(tmp_path / 'user')
    assert assets.resolve(TEST_NAME, path=str(path)) == str(path)


def test_invalid_md5_is_rejected_at_registration():
    with pytest.raises(ValueError):
        assets.Asset('x.bin', 'abc')


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv('KOBERT_GLUON_CACHE', str(tmp_path / 'explicit'))
    assert assets.default_cache_dir() == str(tmp_path / 'explicit')
    monkeypatch.delenv('KOBERT_GLUON_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert assets.default_cache_dir() == str(tmp_path / 'xdg' / 'kobert_gluon')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert assets.default_cache_dir() == str(tmp_path / 'home' / '.cache' / 'kobert_gluon')


def test_md5sum_matches_hashlib(tmp_path):
    assert assets.md5sum(write_file(tmp_path)) == PAYLOAD_MD5


# --- downloading ----------------------------------------------------------------------

def test_download_then_cache_hit_without_network(server, cache_dir):
    path = assets.resolve(TEST_NAME, base_url=server.url('good'))

    assert path == str(cache_dir / TEST_FILENAME)
    assert assets.md5sum(path) == PAYLOAD_MD5
    assert server.count('good') == 1
    assert leftover_partials(cache_dir) == []

    assert assets.resolve(TEST_NAME, base_url=server.url('good')) == path
    assert server.total_requests() == 1


def test_base_url_env_is_used(server, cache_dir, monkeypatch):
    monkeypatch.setenv('KOBERT_BASE_URL', server.url('good') + '/')
    assert assets.md5sum(assets.resolve(TEST_NAME)) == PAYLOAD_MD5
    assert server.count('good') == 1


def test_corrupt_body_is_rejected(server, cache_dir):
    with pytest.raises(assets.AssetError) as caught:
        assets.resolve(TEST_NAME, base_url=server.url('corrupt'))

    message = str(caught.value)
    assert TEST_FILENAME in message
    assert PAYLOAD_MD5 in message
    assert hashlib.md5(bytes(b ^ 0xFF for b in PAYLOAD)).hexdigest() in message
    assert_nothing_cached(cache_dir)


def test_truncated_body_is_rejected(server, cache_dir):
    with pytest.raises(assets.AssetError) as caught:
        assets.resolve(TEST_NAME, base_url=server.url('truncated'))

    assert 'truncated' in str(caught.value)
    assert server.count('truncated') == 1
    assert_nothing_cached(cache_dir)


def test_falls_back_to_next_url_after_corrupt_one(server, cache_dir, monkeypatch):
    register_test_asset(monkeypatch, urls=[server.url('good') + '/' + TEST_FILENAME])

    path = assets.resolve(TEST_NAME, base_url=server.url('corrupt'))

    assert assets.md5sum(path) == PAYLOAD_MD5
    assert server.count('corrupt') == 1
    assert server.count('good') == 1
    assert leftover_partials(cache_dir) == []


def test_falls_back_after_http_404(server, monkeypatch):
    register_test_asset(monkeypatch, urls=[server.url('good') + '/' + TEST_FILENAME])
    assert assets.md5sum(assets.resolve(TEST_NAME, base_url=server.url('missing'))) == PAYLOAD_MD5


def test_server_down_names_file_urls_and_destination(cache_dir):
    url = closed_port_url()
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, base_url=url)

    message = str(caught.value)
    assert TEST_FILENAME in message
    assert url in message
    assert f'put it in {cache_dir}' in message
    assert_nothing_cached(cache_dir)


def test_all_failures_are_reported(server, monkeypatch):
    register_test_asset(monkeypatch, urls=[server.url('missing') + '/' + TEST_FILENAME])
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, base_url=server.url('truncated'))

    attempts = dict(caught.value.attempts)
    assert 'truncated' in attempts[server.url('truncated') + '/' + TEST_FILENAME]
    assert '404' in attempts[server.url('missing') + '/' + TEST_FILENAME]


# --- lookup order ---------------------------------------------------------------------

def test_lookup_order(server, tmp_path, cache_dir, monkeypatch):
    explicit = write_file(tmp_path / 'explicit')
    kobert_dir = tmp_path / 'kobert_dir'
    write_file(kobert_dir)
    home_dir = tmp_path / 'home'
    write_file(home_dir)
    cached = write_file(cache_dir)
    monkeypatch.setenv('KOBERT_HOME', str(home_dir))
    base_url = server.url('good')

    assert assets.resolve(TEST_NAME, path=str(explicit), kobert_dir=str(kobert_dir),
                          base_url=base_url) == str(explicit)
    assert assets.resolve(TEST_NAME, kobert_dir=str(kobert_dir),
                          base_url=base_url) == str(kobert_dir / TEST_FILENAME)
    assert assets.resolve(TEST_NAME, base_url=base_url) == str(home_dir / TEST_FILENAME)
    monkeypatch.delenv('KOBERT_HOME')
    assert assets.resolve(TEST_NAME, base_url=base_url) == str(cached)
    assert server.total_requests() == 0


def test_missing_file_in_user_dir_falls_through_to_cache(tmp_path, cache_dir):
    cached = write_file(cache_dir)
    assert assets.resolve(TEST_NAME, kobert_dir=str(tmp_path / 'empty')) == str(cached)


def test_corrupt_explicit_path_raises(tmp_path, cache_dir):
    write_file(cache_dir)
    corrupt = write_file(tmp_path / 'user', content=b'not kobert')
    with pytest.raises(assets.ChecksumError) as caught:
        assets.resolve(TEST_NAME, path=str(corrupt))
    assert caught.value.path == str(corrupt)


def test_missing_explicit_path_raises(tmp_path, cache_dir):
    write_file(cache_dir)
    with pytest.raises(assets.AssetError, match='does not exist'):
        assets.resolve(TEST_NAME, path=str(tmp_path / 'nowhere.bin'))


def test_corrupt_file_in_kobert_dir_raises_instead_of_being_skipped(server, tmp_path, cache_dir):
    write_file(cache_dir)
    corrupt = write_file(tmp_path / 'kobert_dir', content=b'x' * 100)

    with pytest.raises(assets.ChecksumError) as caught:
        assets.resolve(TEST_NAME, kobert_dir=str(corrupt.parent), base_url=server.url('good'))

    error = caught.value
    assert (error.path, error.expected) == (str(corrupt), PAYLOAD_MD5)
    assert error.actual == hashlib.md5(b'x' * 100).hexdigest()
    for part in (str(corrupt), PAYLOAD_MD5, error.actual):
        assert part in str(error)
    assert server.total_requests() == 0


def test_corrupt_file_in_kobert_home_raises(tmp_path, monkeypatch):
    corrupt = write_file(tmp_path / 'home', content=b'broken')
    monkeypatch.setenv('KOBERT_HOME', str(corrupt.parent))
    with pytest.raises(assets.ChecksumError):
        assets.resolve(TEST_NAME)


def test_corrupt_cache_is_replaced_by_download(server, cache_dir, caplog):
    cached = write_file(cache_dir, content=b'stale')

    with caplog.at_level(logging.WARNING, logger=assets.__name__):
        path = assets.resolve(TEST_NAME, base_url=server.url('good'))

    assert path == str(cached)
    assert cached.read_bytes() == PAYLOAD
    assert server.count('good') == 1
    assert any('corrupt' in record.getMessage() and str(cached) in record.getMessage()
               for record in caplog.records)


def test_corrupt_cache_without_download_raises(cache_dir):
    cached = write_file(cache_dir, content=b'stale')
    with pytest.raises(assets.ChecksumError) as caught:
        assets.resolve(TEST_NAME, download=False)
    assert caught.value.path == str(cached)


# --- download=False -------------------------------------------------------------------

def test_no_download_and_nothing_present_names_cache_dir(server, cache_dir):
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, download=False, base_url=server.url('good'))

    message = str(caught.value)
    assert TEST_FILENAME in message
    assert str(cache_dir) in message
    assert server.total_requests() == 0


def test_no_download_names_kobert_dir_when_given(tmp_path):
    kobert_dir = tmp_path / 'models'
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, kobert_dir=str(kobert_dir), download=False)
    assert f'put it in {kobert_dir}' in str(caught.value)


def test_unknown_asset_name():
    with pytest.raises(assets.AssetError, match='spiece'):
        assets.resolve('no-such-asset')


# --- concurrency ----------------------------------------------------------------------

def resolve_in_child(base_url, cache_dir, barrier, results):
    try:
        # A spawned child starts from the real registry, without the test asset.
        assets.ASSETS.setdefault(TEST_NAME, assets.Asset(TEST_FILENAME, PAYLOAD_MD5))
        barrier.wait(timeout=hang_guard(10))
        path = assets.resolve(TEST_NAME, cache_dir=cache_dir, base_url=base_url)
        results.put(('ok', path, assets.md5sum(path)))
    except BaseException as err:  # report everything to the parent
        results.put(('error', repr(err), ''))


def test_concurrent_processes_share_one_download(server, cache_dir):
    context = multiprocessing.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [context.Process(target=resolve_in_child,
                               args=(server.url('slow'), str(cache_dir), barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=hang_guard(10)) for _ in workers]
    for worker in workers:
        worker.join(timeout=hang_guard(10))
        assert worker.exitcode == 0

    expected_path = str(cache_dir / TEST_FILENAME)
    assert outcomes == [('ok', expected_path, PAYLOAD_MD5)] * 2
    assert (cache_dir / TEST_FILENAME).read_bytes() == PAYLOAD
    # The file lock makes the second process wait and then find the finished file.
    assert 1 <= server.count('slow') <= (1 if assets.lock.fcntl is not None else 2)
    assert leftover_partials(cache_dir) == []


# --- the real KoBERT files ------------------------------------------------------------

@pytest.mark.parametrize('name', ['spiece', 'sp_model_v01', 'vocab_v01'])
def test_registry_md5_matches_authentic_file(name, cache_dir, kobert_dir):
    kobert_dir = str(kobert_dir)
    expected_path = os.path.join(kobert_dir, assets.ASSETS[name].filename)

    path = assets.resolve(name, kobert_dir=kobert_dir, download=False)

    assert path == expected_path
    assert assets.md5sum(path).startswith(assets.ASSETS[name].md5)
    assert not cache_dir.exists()


# --- stalled mirrors, the download lock ------------------------------------------------

def test_trickling_mirror_meets_the_deadline(server, cache_dir, monkeypatch):
    monkeypatch.setenv('KOBERT_GLUON_DOWNLOAD_DEADLINE', '1.5')
    started = time.monotonic()
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, base_url=server.url('trickle'))
    assert time.monotonic() - started < 1.5 + 3 * TRICKLE_S + 2  # deadline, one more byte, slack
    reason = dict(caught.value.attempts)[server.url('trickle') + '/' + TEST_FILENAME]
    assert 'too slow' in reason and 'KOBERT_GLUON_DOWNLOAD_DEADLINE' in reason
    assert_nothing_cached(cache_dir)


def test_silent_mirror_meets_the_read_timeout(server, cache_dir, monkeypatch):
    monkeypatch.setenv('KOBERT_GLUON_READ_TIMEOUT', '0.5')
    started = time.monotonic()
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve(TEST_NAME, base_url=server.url('silent'))
    assert time.monotonic() - started < 3
    assert 'timed out' in str(caught.value)
    assert_nothing_cached(cache_dir)


def test_invalid_limit_is_named(monkeypatch):
    monkeypatch.setenv('KOBERT_GLUON_READ_TIMEOUT', 'soon')
    with pytest.raises(assets.AssetError, match="KOBERT_GLUON_READ_TIMEOUT='soon'"):
        assets.setting(assets.READ_TIMEOUT)


def lock_holder(cache_dir):
    try:
        return json.loads((cache_dir / (TEST_FILENAME + '.lock')).read_text() or 'null')
    except (OSError, ValueError):
        return None


def resolve_in_forked_child(base_url, cache_dir, results):
    try:
        results.put(('ok', assets.resolve(TEST_NAME, cache_dir=cache_dir, base_url=base_url)))
    except BaseException as err:  # report everything to the parent
        results.put(('error', str(err)))


@pytest.mark.skipif(assets.lock.fcntl is None or not sys.platform.startswith('linux'), reason='needs flock and fork')
def test_second_waiter_gives_up_naming_the_holder(server, cache_dir, monkeypatch):
    monkeypatch.setenv('KOBERT_GLUON_DOWNLOAD_DEADLINE', '4')
    context = multiprocessing.get_context('fork')
    results = context.Queue()
    first = context.Process(target=resolve_in_forked_child, args=(server.url('trickle'), str(cache_dir), results))
    first.start()
    try:
        for _ in range(100):
            if (lock_holder(cache_dir) or {}).get('pid') == first.pid:
                break
            time.sleep(0.05)
        assert lock_holder(cache_dir) == {'pid': first.pid, 'host': socket.gethostname(),
                                          'since': pytest.approx(time.time(), abs=10)}
        monkeypatch.setenv('KOBERT_GLUON_LOCK_TIMEOUT', '0.5')
        started = time.monotonic()
        with pytest.raises(assets.AssetError) as caught:
            assets.resolve(TEST_NAME, base_url=server.url('good'))
        assert time.monotonic() - started < 3
        message = str(caught.value)
        for part in (str(cache_dir / TEST_FILENAME) + '.lock', f'pid {first.pid}', socket.gethostname(),
                     'KOBERT_GLUON_LOCK_TIMEOUT'):
            assert part in message
        assert server.count('good') == 0
        status, first_error = results.get(timeout=hang_guard(10))
    finally:
        first.join(timeout=hang_guard(10))
    assert status == 'error' and 'too slow' in first_error
    assert_nothing_cached(cache_dir)


@pytest.mark.skipif(assets.lock.fcntl is None, reason='needs flock')
def test_lock_of_a_dead_holder_is_taken_over(server, cache_dir, caplog):
    """flock outlives its holder only in a child that inherited it; the record names the holder."""
    dead_pid = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead_pid.wait()
    cache_dir.mkdir(parents=True)
    lock_path = cache_dir / (TEST_FILENAME + '.lock')
    with open(lock_path, 'w') as orphaned:
        assets.lock.fcntl.flock(orphaned, assets.lock.fcntl.LOCK_EX | assets.lock.fcntl.LOCK_NB)
        orphaned.write(json.dumps({'pid': dead_pid.pid, 'host': socket.gethostname(), 'since': 0}))
        orphaned.flush()
        with caplog.at_level(logging.WARNING, logger=assets.__name__):
            path = assets.resolve(TEST_NAME, base_url=server.url('good'))
    assert assets.md5sum(path) == PAYLOAD_MD5
    assert any('Taking over' in r.getMessage() and f'pid {dead_pid.pid}' in r.getMessage() for r in caplog.records)
    assert json.loads(lock_path.read_text())['pid'] == os.getpid()  # the new lock file names us


def test_partial_file_of_a_killed_download_is_removed(server, cache_dir):
    cache_dir.mkdir(parents=True)
    stale = cache_dir / f'.{TEST_FILENAME}.k1ll3d.part'
    stale.write_bytes(PAYLOAD[:100])
    assets.resolve(TEST_NAME, base_url=server.url('good'))
    assert leftover_partials(cache_dir) == []


# --- messages for corrupt files --------------------------------------------------------

def test_corrupt_cache_is_reported_as_found_not_as_missing(cache_dir):
    cached = write_file(cache_dir, content=b'stale')
    with pytest.raises(assets.ChecksumError) as caught:
        assets.resolve(TEST_NAME, base_url=closed_port_url())
    message = str(caught.value)
    assert message.startswith(f'found {cached}, md5 {hashlib.md5(b"stale").hexdigest()}, expected {PAYLOAD_MD5}')
    assert 'put it in' not in message
    assert 'Downloading a fresh copy failed' in message
    assert cached.read_bytes() == b'stale'  # left for the user to inspect


def test_checksum_error_for_kobert_params_says_how_to_use_own_weights(tmp_path):
    own = write_file(tmp_path / 'home', content=b'my own fine-tuned bert')
    os.rename(own, own.parent / assets.ASSETS['mxnet_params'].filename)
    with pytest.raises(assets.ChecksumError) as caught:
        assets.resolve('mxnet_params', kobert_dir=str(own.parent), download=False)
    message = str(caught.value)
    assert 'mxnet_kobert_45b6957552.params' in message and 'expected 45b6957552' in message
    assert 'model_file=' in message and '--init_from' in message


# --- the original package's folders ------------------------------------------------------

@pytest.fixture
def old_folders(home_and_cwd):
    home, work = home_and_cwd
    return home / 'kobert', work / '.cache'


def test_old_folders_are_searched_in_order(old_folders, cache_dir, server):
    v01_home, v02_cache = old_folders
    own_cache = write_file(cache_dir)
    assert assets.resolve(TEST_NAME, base_url=server.url('good')) == str(own_cache)
    in_home = write_file(v01_home)
    assert assets.resolve(TEST_NAME, base_url=server.url('good')) == str(in_home)
    in_cwd_cache = write_file(v02_cache)
    assert assets.resolve(TEST_NAME, base_url=server.url('good')) == str(in_cwd_cache)
    assert server.total_requests() == 0


def test_legacy_dirs_env_replaces_the_old_folders(old_folders, cache_dir, monkeypatch, tmp_path):
    write_file(old_folders[1])
    monkeypatch.setenv('KOBERT_GLUON_LEGACY_DIRS', str(tmp_path / 'elsewhere'))
    with pytest.raises(assets.AssetNotFoundError):
        assets.resolve(TEST_NAME, download=False)


def test_corrupt_file_in_an_old_folder_is_reported(old_folders, server):
    corrupt = write_file(old_folders[0], content=b'half')
    with pytest.raises(assets.ChecksumError, match=f'found {corrupt}, md5'):
        assets.resolve(TEST_NAME, base_url=server.url('good'))
    assert server.total_requests() == 0


def test_remembered_cache_dir_is_searched_by_later_calls(tmp_path, server):
    given = tmp_path / 'given'
    assert assets.remember_cache_dir(str(given)) == str(given)
    assert assets.remember_cache_dir(None) == str(given)
    path, found = assets.fetch(assets.ASSETS[TEST_NAME], cache_dir=assets.remember_cache_dir(None),
                               base_url=server.url('good'))
    assert (path, found) == (str(given / TEST_FILENAME), False)


# --- no test leaves 127.0.0.1 (tests/conftest.py) -----------------------------------------

def test_a_connection_beyond_loopback_fails_the_test_loudly(server):
    import urllib.request
    for url in (assets.ASSETS['spiece'].urls[0], 'http://10.0.0.1:80/'):
        with pytest.raises(pytest.fail.Exception, match='tests must stay on 127.0.0.1'):
            urllib.request.urlopen(url, timeout=1)
    with urllib.request.urlopen(server.url('good') + '/' + TEST_FILENAME, timeout=5) as local:
        assert local.read() == PAYLOAD


def test_registry_mirrors_are_off_in_tests_and_subprocesses(monkeypatch, cache_dir):
    monkeypatch.setenv('KOBERT_GLUON_NO_MIRRORS', '1')  # what conftest sets for every other test
    with pytest.raises(assets.AssetNotFoundError) as caught:
        assets.resolve('mxnet_params')
    assert caught.value.attempts == [('-', 'no URL known')]
    assert_nothing_cached(cache_dir)
