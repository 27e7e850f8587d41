"""Tests for kobert_gluon.assets against a real HTTP server on 127.0.0.1."""

import collections
import hashlib
import http.server
import logging
import multiprocessing
import os
import random
import socket
import sys
import threading
import time

import pytest

from kobert_gluon import assets

PAYLOAD = random.Random(1234).randbytes(200 * 1024)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
TEST_NAME = 'test_payload'
TEST_FILENAME = 'test_payload_0123456789.bin'


class PayloadServer:
    """Serves PAYLOAD under /<mode>/<filename>; mode picks how it misbehaves."""

    def __init__(self):
        self.requests = collections.Counter()
        self._lock = threading.Lock()
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
                elif mode == 'slow':
                    for start in range(0, len(body), 20 * 1024):
                        self.wfile.write(body[start:start + 20 * 1024])
                        self.wfile.flush()
                        time.sleep(0.03)
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
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
    """Keep every test away from the user's home, env and the real mirrors."""
    monkeypatch.delenv('KOBERT_HOME', raising=False)
    monkeypatch.delenv('KOBERT_BASE_URL', raising=False)
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
        barrier.wait(timeout=10)
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
    outcomes = [results.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0

    expected_path = str(cache_dir / TEST_FILENAME)
    assert outcomes == [('ok', expected_path, PAYLOAD_MD5)] * 2
    assert (cache_dir / TEST_FILENAME).read_bytes() == PAYLOAD
    # The file lock makes the second process wait and then find the finished file.
    assert 1 <= server.count('slow') <= (1 if assets.fcntl is not None else 2)
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
