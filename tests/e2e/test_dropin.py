"""kobert_gluon as a drop-in for SKT's `kobert` package: its old names, signatures and folders.

Every version of SKT's NSMC notebook, run on this package, is in tests/e2e/test_notebooks.py.
"""
import hashlib
import http.server
import inspect
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import kobert_gluon
from hangguard import hang_guard

REPO = pathlib.Path(__file__).resolve().parents[2]
SPIECE = 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
THREAD_SETTINGS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')


def run_python(code, cwd=REPO, env=None, unset=(), timeout=hang_guard(60)):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    environment.update(env or {})
    for name in unset:
        environment.pop(name, None)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


# --- the package surface ------------------------------------------------------------------

def test_finding_files_does_not_load_mxnet():
    done = run_python('''
        import sys
        import kobert_gluon.assets
        import kobert
        from kobert.utils import download, get_tokenizer
        from kobert_gluon.legacy import get_tokenizer_path
        print(sorted(m for m in ('mxnet', 'gluonnlp', 'torch') if m in sys.modules))
        print(sorted(kobert_gluon.CPU_DEFAULTS))
    ''', unset=THREAD_SETTINGS)
    assert done.returncode == 0, done.stderr
    loaded, thread_defaults = done.stdout.splitlines()
    assert loaded == '[]'
    assert 'OMP_NUM_THREADS' in thread_defaults  # decided although mxnet was never imported


def test_sentencepiece_fix_follows_gluonnlp_imported_after_kobert(kobert_dir):
    done = run_python(f'''
        import kobert
        import gluonnlp as nlp
        import sentencepiece as spm
        from kobert_gluon.text.tokenizer import get_vocab
        path = {str(kobert_dir / SPIECE)!r}
        tokenizer = nlp.data.BERTSPTokenizer(path, get_vocab(path), lower=False)
        text = '한국어 모델을 공유합니다'  # no punctuation: BERTSPTokenizer splits that off first
        assert tokenizer(text) == spm.SentencePieceProcessor(model_file=path).EncodeAsPieces(text)
        print(spm.__version__)
    ''')
    assert done.returncode == 0, done.stderr[-2000:]
    assert tuple(int(p) for p in done.stdout.split('.')[:2]) >= (0, 1)


def test_sentencepiece_fix_applies_at_once_when_gluonnlp_came_first():
    done = run_python('''
        import gluonnlp
        from gluonnlp.data import transforms
        before = transforms.SentencepieceTokenizer.__call__
        import kobert_gluon
        from kobert_gluon import spm_compat
        print(before is not transforms.SentencepieceTokenizer.__call__, spm_compat.is_applied())
    ''')
    assert done.stdout.split() == ['True', 'True'], done.stderr[-2000:]


def test_package_exports():
    for name in kobert_gluon.__all__:
        assert getattr(kobert_gluon, name) is not None, name
    from kobert_gluon.inference.export import export
    assert kobert_gluon.export is export
    assert issubclass(kobert_gluon.AssetError, kobert_gluon.KobertGluonError)
    with pytest.raises(AttributeError):
        kobert_gluon.no_such_name


# --- old names and signatures ------------------------------------------------------------

# Parameter names of SKT's functions (kobert v0.2.3; get_kobert_model from v0.1.2).
ORIGINAL_PARAMETERS = {
    'download': ['url', 'chksum', 'cachedir'],
    'get_tokenizer': ['cachedir'],
    'get_mxnet_kobert_model': ['use_pooler', 'use_decoder', 'use_classifier', 'ctx', 'cachedir'],
    'get_kobert_model': ['model_file', 'vocab_file', 'use_pooler', 'use_decoder', 'use_classifier', 'ctx'],
    'get_pytorch_kobert_model': ['ctx', 'cachedir'],
    'get_onnx_kobert_model': ['cachedir'],
}


def test_kobert_alias_has_the_original_names_and_signatures():
    import kobert
    import kobert.mxnet_kobert
    import kobert.utils
    import kobert.utils.utils
    import kobert_gluon.mxnet_kobert
    import kobert_gluon.legacy

    places = {'download': [kobert, kobert.utils, kobert.utils.utils, kobert_gluon.legacy],
              'get_tokenizer': [kobert, kobert.utils, kobert.utils.utils],
              'get_mxnet_kobert_model': [kobert, kobert.mxnet_kobert, kobert_gluon.mxnet_kobert],
              'get_kobert_model': [kobert.mxnet_kobert, kobert_gluon.mxnet_kobert],
              'get_pytorch_kobert_model': [kobert], 'get_onnx_kobert_model': [kobert]}
    for name, modules in places.items():
        for module in modules:
            parameters = list(inspect.signature(getattr(module, name)).parameters)
            expected = ORIGINAL_PARAMETERS[name]
            assert parameters[:len(expected)] == expected, (module.__name__, name)
    assert set(kobert.__all__) == {'download', 'get_tokenizer', 'get_tokenizer_path', 'get_pytorch_kobert_model',
                                   'get_mxnet_kobert_model', 'get_onnx_kobert_model'}
    assert kobert_gluon.legacy.get_tokenizer_path is kobert_gluon.get_tokenizer_path


def test_get_tokenizer_path_of_skts_head_notebook(home_and_cwd, kobert_dir):
    """HEAD's ("0.2.4") import cell: ``from kobert import get_tokenizer_path``; v0.2's cachedir."""
    from kobert import get_mxnet_kobert_model, get_tokenizer_path  # noqa: F401  (the cell's imports)
    from kobert.utils import get_tokenizer_path as from_utils

    cache = home_and_cwd[1] / '.cache'
    cache.mkdir()
    expected = shutil.copy(kobert_dir / SPIECE, cache)
    assert get_tokenizer_path(cachedir='.cache') == str(expected) == from_utils()
    assert list(inspect.signature(get_tokenizer_path).parameters) == ['cachedir']
    import kobert
    assert 'get_tokenizer_path' in kobert.__all__


def test_submodules_reexport_what_skts_had():
    import kobert.mxnet_kobert
    import kobert.onnx_kobert
    import kobert.pytorch_kobert
    import kobert.utils
    import kobert.utils.utils
    from kobert_gluon import legacy

    for module in (kobert.mxnet_kobert, kobert.pytorch_kobert, kobert.onnx_kobert, kobert.utils, kobert.utils.utils):
        assert module.download is legacy.download, module.__name__
    for module in (kobert.mxnet_kobert, kobert.pytorch_kobert, kobert.utils, kobert.utils.utils):
        assert module.get_tokenizer is legacy.get_tokenizer, module.__name__
    assert kobert.utils.get_onnx is legacy.get_onnx
    assert callable(kobert.onnx_kobert.make_dummy_input) and callable(kobert.pytorch_kobert.get_kobert_model)
    assert kobert.utils.utils.AwsS3Downloader.__name__ == 'AwsS3Downloader'


def test_module_level_dictionaries_have_skts_keys():
    import kobert.mxnet_kobert
    import kobert.onnx_kobert
    import kobert.pytorch_kobert
    import kobert.utils

    entries = [kobert.utils.tokenizer, kobert.utils.onnx_kobert, kobert.onnx_kobert.onnx_kobert,
               kobert.mxnet_kobert.mxnet_kobert, kobert.pytorch_kobert.pytorch_kobert,
               *kobert.utils.kobert_models.values(), *kobert.mxnet_kobert.kobert_models.values(),
               *kobert.pytorch_kobert.kobert_models.values()]
    for entry in entries:
        assert set(entry) == {'url', 'fname', 'chksum'} and entry['url'].endswith('/' + entry['fname'])
    assert kobert.utils.tokenizer['fname'] == SPIECE and kobert.utils.tokenizer['chksum'] == 'ae5711deb3'
    assert kobert.mxnet_kobert.mxnet_kobert['chksum'] == '45b6957552'
    assert set(kobert.mxnet_kobert.kobert_models) == {'mxnet_kobert', 'vocab'}
    assert set(kobert.utils.kobert_models) == {'onnx_kobert', 'tokenizer'}
    assert kobert.pytorch_kobert.bert_config['vocab_size'] == 8002
    assert kobert.pytorch_kobert.bert_config['num_hidden_layers'] == 12


V01_FILES = ('tokenizer_78b3253a26.model', 'kobertvocab_f38b8a4d6d.json')


@pytest.mark.parametrize('where', ['home', 'cachedir'])
def test_a_v01_folder_gives_the_arrays_of_the_spiece(where, home_and_cwd, kobert_dir, tmp_path):
    """A folder holding only v0.1's pair: get_tokenizer() and get_mxnet_kobert_model() work."""
    import gluonnlp as nlp
    import mxnet as mx
    from kobert import get_mxnet_kobert_model, get_tokenizer
    from kobert_gluon import assets
    from kobert_gluon.models.bert import build_bert
    from kobert_gluon.models.config import BertConfig

    config = BertConfig(num_layers=1, units=32, hidden_size=64, num_heads=2, max_length=64)
    bert = build_bert(config, use_decoder=False, use_classifier=False)
    bert.initialize(init=mx.init.Normal(0.02))
    bert(mx.nd.ones((1, 4)), mx.nd.zeros((1, 4)), mx.nd.array([4]))
    bert.save_parameters(str(tmp_path / 'own.params'))

    def arrays(folder, cachedir):
        assets.remember_cache_dir(None)
        assets._remembered_cache_dir = None
        model, vocab = get_mxnet_kobert_model(use_decoder=False, use_classifier=False, cachedir=cachedir,
                                              model_file=str(tmp_path / 'own.params'), config=config)
        path = get_tokenizer()
        assert os.path.dirname(path) == str(folder)
        transform = nlp.data.BERTSentenceTransform(nlp.data.BERTSPTokenizer(path, vocab, lower=False), 32, pair=False)
        ids, valid, segments = zip(*[transform([text]) for text in ('나 보기가 역겨워', '한국어 모델을 공유합니다.')])
        _, pooled = model(mx.nd.array(ids), mx.nd.array(segments), mx.nd.array(valid))
        return np.array(ids), pooled.asnumpy(), vocab.idx_to_token

    home, work = home_and_cwd
    folders = {'v01': (home / 'kobert') if where == 'home' else (work / 'models'), 'spiece': work / 'spiece'}
    for folder in folders.values():
        folder.mkdir()
    for name in V01_FILES:
        shutil.copy(kobert_dir / name, folders['v01'])
    shutil.copy(kobert_dir / SPIECE, folders['spiece'])
    v01 = arrays(folders['v01'], None if where == 'home' else str(folders['v01']))
    assert sorted(os.listdir(folders['v01'])) == sorted(V01_FILES)  # nothing downloaded or added
    spiece = arrays(folders['spiece'], str(folders['spiece']))
    assert np.array_equal(v01[0], spiece[0]) and np.array_equal(v01[1], spiece[1]) and v01[2] == spiece[2]


@pytest.fixture
def old_world(home_and_cwd):
    return home_and_cwd


def test_get_tokenizer_finds_the_v01_home_folder(old_world, kobert_dir):
    import kobert
    home, _ = old_world
    (home / 'kobert').mkdir()
    expected = shutil.copy(kobert_dir / SPIECE, home / 'kobert')
    assert kobert.get_tokenizer() == str(expected)
    assert kobert_gluon.legacy.get_tokenizer_path() == str(expected)


def test_cachedir_given_once_is_searched_by_later_calls(old_world, kobert_dir, tmp_path):
    """Cell 5 passes cachedir, cell 6 does not; here the folder is not ./.cache either."""
    from kobert import get_tokenizer
    given = tmp_path / 'models'
    given.mkdir()
    expected = shutil.copy(kobert_dir / SPIECE, given)
    (old_world[1] / 'elsewhere').mkdir()
    assert get_tokenizer(cachedir=str(given)) == str(expected)
    os.chdir(old_world[1] / 'elsewhere')
    assert get_tokenizer() == str(expected)


class OneFileServer:
    """Serves ``body`` under any path on 127.0.0.1 and counts requests."""

    def __init__(self, body):
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)
        self.thread.start()
        self.url = f'http://127.0.0.1:{self.httpd.server_port}/KoBERT/models/own_file.bin'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_returns_path_and_whether_it_was_cached(old_world, tmp_path):
    from kobert import download
    body = b'any file the old download() fetched'
    server = OneFileServer(body)
    try:
        path, cached = download(server.url, hashlib.md5(body).hexdigest()[:10], cachedir='.cache')
        assert (path, cached) == (str(old_world[1] / '.cache' / 'own_file.bin'), False)
        assert download(server.url, hashlib.md5(body).hexdigest()) == (path, True)
        assert server.requests == 1
        with pytest.raises(kobert_gluon.ConfigError, match='chksum is needed'):
            download(server.url.replace('own_file', 'other_file'))
    finally:
        server.close()


def test_download_of_a_known_file_uses_the_registry(old_world, kobert_dir):
    from kobert import download
    cache = old_world[1] / '.cache'
    cache.mkdir()
    shutil.copy(kobert_dir / SPIECE, cache)
    url = 's3://skt-lsl-nlp-model/KoBERT/tokenizers/' + SPIECE  # v0.2.3's URL; never contacted
    assert download(url, 'ae5711deb3') == (str(cache / SPIECE), True)
    assert download(url) == (str(cache / SPIECE), True)  # chksum known to kobert_gluon


def closed_port_url(name):
    """An http URL on 127.0.0.1 where nothing listens: a download that fails at once, offline-like."""
    import socket

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    return f'http://127.0.0.1:{port}/KoBERT/models/{name}'


def test_download_v01_signature_returns_the_path(old_world, tmp_path):
    from kobert.utils import download
    body = b'a v0.1 file'
    server = OneFileServer(body)
    try:
        chksum = hashlib.md5(body).hexdigest()[:10]
        path = download(server.url, 'own_file.bin', chksum, cachedir='~/kobert/')  # v0.1: (url, filename, chksum, cachedir)
        assert path == str(old_world[0] / 'kobert' / 'own_file.bin')
        assert download(server.url, filename='own_file.bin', chksum=chksum) == path
        assert server.requests == 1
    finally:
        server.close()


def test_failed_download_returns_none_false_and_logs_why(old_world, caplog):
    from kobert import download
    url = closed_port_url('missing_file.bin')
    with caplog.at_level('WARNING', logger='kobert_gluon.legacy'):
        assert download(url, 'f' * 10, cachedir='.cache') == (None, False)
    assert 'missing_file.bin' in caplog.text and 'failed' in caplog.text
    with pytest.raises(kobert_gluon.AssetError):  # v0.1 raised
        download(url, 'missing_file.bin', 'f' * 10)


def test_aws_s3_downloader_fetches_and_says_why_offline(old_world, tmp_path):
    from kobert.utils.aws_s3_downloader import AwsS3Downloader
    server = OneFileServer(b'public object')
    try:
        path = AwsS3Downloader().download(server.url, str(tmp_path / 'local'))
        assert open(path, 'rb').read() == b'public object' and path == str(tmp_path / 'local' / 'own_file.bin')
    finally:
        server.close()
    with pytest.raises(kobert_gluon.AssetError, match=r'downloading file is failed\. .*without network, put other.bin'):
        AwsS3Downloader().download(closed_port_url('other.bin'), str(tmp_path / 'local'))
    assert sorted(os.listdir(tmp_path / 'local')) == ['own_file.bin']  # no partial file left


# --- SKT's package and the alias, installed over each other ---------------------------------

def fake_skt_distribution(site, version='0.2.3'):
    info = site / f'kobert-{version}.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: kobert\nVersion: {version}\n')
    (info / 'RECORD').write_text('kobert/__init__.py,,\nkobert/mxnet_kobert.py,,\n')


def test_alias_installed_over_skt_package_is_reported(tmp_path):
    site = tmp_path / 'site'
    shutil.copytree(REPO / 'kobert', site / 'kobert')  # our files won, SKT's metadata stayed
    fake_skt_distribution(site)
    done = run_python('import kobert', cwd=tmp_path, env={'PYTHONPATH': os.pathsep.join([str(site), str(REPO)])})
    assert done.returncode == 0, done.stderr
    assert 'KobertAliasWarning' in done.stderr
    assert "SKT's kobert 0.2.3 is installed into the same folder as kobert_gluon's alias" in done.stderr
    assert 'pip uninstall -y kobert' in done.stderr


def test_skt_package_installed_over_alias_is_reported(tmp_path):
    site = tmp_path / 'site'
    (site / 'kobert').mkdir(parents=True)
    (site / 'kobert' / '__init__.py').write_text('# stands for SKT\'s kobert/__init__.py\n')
    fake_skt_distribution(site)
    done = run_python('''
        import kobert_gluon
        from kobert_gluon.legacy import kobert_alias_problems
        print(len(kobert_alias_problems()))
    ''', cwd=tmp_path, env={'PYTHONPATH': os.pathsep.join([str(site), str(REPO)])})
    assert done.returncode == 0, done.stderr
    assert f'`import kobert` loads {site / "kobert" / "__init__.py"}, which is not kobert_gluon' in done.stderr
    assert done.stdout.strip() == '3'  # not the alias; SKT's installed; how to fix


def test_clean_install_reports_nothing():
    done = run_python('import kobert, kobert_gluon; from kobert_gluon.legacy import kobert_alias_problems; '
                      'print(kobert_alias_problems())', env={'PYTHONWARNINGS': 'error'})
    assert (done.returncode, done.stdout.strip()) == (0, '[]'), done.stderr
