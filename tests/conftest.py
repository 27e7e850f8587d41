"""Fixtures shared by the test files.

``shared_dir`` / ``kobert_dir``: the read-only reference files, found only through
``KOBERT_GLUON_SHARED``; skipped with the reason when absent, failed when ``CI`` is set.
``demo_model_dir``: a model directory trained once per session on the embedded demo set.
Every test runs with a private KoBERT cache, without ``KOBERT_HOME`` and without the old
package's folders (``./.cache``, ``~/kobert``), so none reads the user's home. No test can
leave 127.0.0.1: the registry's mirrors are off (also in subprocesses) and, in this process,
a connection or name lookup for any other host fails the test.
"""
import ipaddress
import json
import os
import pathlib
import shutil
import socket
import types

import pytest

SHARED_ENV = 'KOBERT_GLUON_SHARED'
DEMO_EPOCHS = 2


def isolate_kobert_env(patch, cache_dir):
    patch.delenv('KOBERT_HOME', raising=False)
    patch.setenv('KOBERT_GLUON_CACHE', str(cache_dir))
    patch.setenv('KOBERT_GLUON_LEGACY_DIRS', '')
    patch.setenv('KOBERT_GLUON_NO_MIRRORS', '1')
    patch.setenv('KOBERT_GLUON_NO_PACKAGED', '1')  # no KoBERT file anywhere unless a test puts one
    patch.setattr('kobert_gluon.assets._remembered_cache_dir', None)


@pytest.fixture(scope='session', autouse=True)
def isolated_session_env(tmp_path_factory):
    """Covers session- and module-scoped fixtures too, which start before function ones."""
    with pytest.MonkeyPatch.context() as patch:
        isolate_kobert_env(patch, tmp_path_factory.mktemp('kobert-session-cache'))
        block_other_hosts(patch)
        yield


LOCAL_NAMES = ('localhost', socket.gethostname())


def _is_local(host):
    if host is None or host in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(str(host).split('%')[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _refuse(host):
    pytest.fail(f'a test tried to reach {host}: tests must stay on 127.0.0.1', pytrace=True)


def block_other_hosts(patch):
    """Fail loudly (not as an OSError a download loop would swallow) on any non-loopback host."""
    real_getaddrinfo, real_connect, real_connect_ex = (socket.getaddrinfo, socket.socket.connect,
                                                       socket.socket.connect_ex)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_local(host.decode() if isinstance(host, bytes) else host):
            _refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded(real):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
                _refuse(address[0])
            return real(self, address)
        return connect

    patch.setattr(socket, 'getaddrinfo', getaddrinfo)
    patch.setattr(socket.socket, 'connect', guarded(real_connect))
    patch.setattr(socket.socket, 'connect_ex', guarded(real_connect_ex))


@pytest.fixture(autouse=True)
def isolated_kobert_env(monkeypatch, tmp_path_factory):
    """A cache of its own per test, so no test sees files another one left."""
    isolate_kobert_env(monkeypatch, tmp_path_factory.mktemp('kobert-cache'))


def missing_shared(reason):
    if os.environ.get('CI'):
        pytest.fail(f'{reason}; CI must provide it')
    pytest.skip(reason)


@pytest.fixture(scope='session')
def shared_dir():
    value = os.environ.get(SHARED_ENV)
    if not value:
        missing_shared(f'{SHARED_ENV} is not set')
    if not os.path.isdir(value):
        missing_shared(f'{SHARED_ENV}={value} is not a directory')
    return pathlib.Path(value).resolve()  # the README passes ../shared


@pytest.fixture(scope='session')
def kobert_dir(shared_dir):
    path = shared_dir / 'kobert'
    if not path.is_dir():
        missing_shared(f'no KoBERT files at {path}')
    return path


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory):
    """The demo trained once: ``.classifier`` (in memory, last epoch) and ``.run_dir``."""
    from kobert_gluon.training.config import TrainConfig
    from kobert_gluon.training.finetune import train

    run_dir = tmp_path_factory.mktemp('demo-run')
    classifier = train(TrainConfig.demo(output_dir=str(run_dir), num_epochs=DEMO_EPOCHS))
    return types.SimpleNamespace(classifier=classifier, run_dir=run_dir)


@pytest.fixture(scope='session')
def demo_model_dir(demo_run):
    """The demo run's ``best/`` model directory; copy it before changing anything in it."""
    return demo_run.run_dir / 'best'


@pytest.fixture(scope='session')
def demo_classifier(demo_model_dir):
    from kobert_gluon.inference.classifier import TextClassifier

    return TextClassifier.load(demo_model_dir)


# ---------------------------------------------------------------------------- small training runs

@pytest.fixture
def small_data(tmp_path):
    """96 rows of the embedded demo set, as a user's TSV file (see helpers.py)."""
    from helpers import write_small_data
    return write_small_data(tmp_path)


@pytest.fixture
def tiny(monkeypatch):
    """'small' BERT becomes the 1-layer TINY model, dropout on."""
    from helpers import tiny_bert
    tiny_bert(monkeypatch, dropout=0.1)


@pytest.fixture
def no_dropout_tiny_bert(monkeypatch):
    from helpers import tiny_bert
    tiny_bert(monkeypatch, dropout=0.0)


@pytest.fixture(scope='session')
def task_data(tmp_path_factory):
    """The synthetic pair (NLI-like, STS-like) and multi-label tables (helpers.write_task_data)."""
    from helpers import write_task_data
    return write_task_data(tmp_path_factory.mktemp('task-data'))


@pytest.fixture(scope='session')
def task_runs(tmp_path_factory, task_data):
    """One tiny model per kind of run of helpers.TASK_SETTINGS (pair classification, pair regression,
    multi-label from a list column and from 0/1 columns), trained once."""
    from helpers import TASK_SETTINGS, task_config, tiny_bert
    from kobert_gluon.training.finetune import train

    folder = tmp_path_factory.mktemp('task-runs')
    with pytest.MonkeyPatch.context() as patch:
        tiny_bert(patch, dropout=0.1)
        return {name: train(task_config(folder, task_data, name)) for name in TASK_SETTINGS}


# ---------------------------------------------------------------------------- broken model directories

def _remove(relative):
    return lambda model_dir: (model_dir / relative).unlink()


def _truncate_params(model_dir):
    params = model_dir / 'model.params'
    params.write_bytes(params.read_bytes()[:params.stat().st_size // 2])


def _edit_config(change):
    def edit(model_dir):
        path = model_dir / 'config.json'
        config = json.loads(path.read_text(encoding='utf-8'))
        change(config)
        path.write_text(json.dumps(config, ensure_ascii=False), encoding='utf-8')
    return edit


def _add_layer(config):
    config['bert']['num_layers'] += 1


def _add_class(config):
    config['num_classes'] += 1


def _add_class_and_label(config):
    _add_class(config)
    config['labels']['extra'] = len(config['labels'])


def _first_tokenizer_file(model_dir):
    return next((model_dir / 'tokenizer').iterdir())


def _remove_tokenizer(model_dir):
    _first_tokenizer_file(model_dir).unlink()


def _corrupt_tokenizer(model_dir):
    with open(_first_tokenizer_file(model_dir), 'ab') as tokenizer_file:
        tokenizer_file.write(b'junk')


# name -> (damage, words the error message must contain)
MODEL_DIR_DAMAGE = {
    'missing params': (_remove('model.params'), ['missing', 'model.params']),
    'truncated params': (_truncate_params, ['corrupt', 'model.params']),
    'missing tokenizer': (_remove_tokenizer, ['missing tokenizer file', 'tokenizer/']),
    'corrupt tokenizer': (_corrupt_tokenizer, ['md5', 'tokenizer']),
    'missing config': (_remove('config.json'), ['missing', 'config.json']),
    'num_layers differs': (_edit_config(_add_layer), ['model.params', 'does not match', 'config.json']),
    'num_classes differs': (_edit_config(_add_class), ['config.json', 'num_classes']),
    'num_classes and labels differ': (_edit_config(_add_class_and_label),
                                      ['model.params', 'does not match', 'config.json']),
}


@pytest.fixture(params=sorted(MODEL_DIR_DAMAGE))
def broken_model_dir(request, demo_model_dir, tmp_path):
    """``(directory, words)``: a damaged copy of the demo model and what its error must say."""
    damage, words = MODEL_DIR_DAMAGE[request.param]
    model_dir = tmp_path / 'broken-model'
    shutil.copytree(demo_model_dir, model_dir)
    damage(model_dir)
    return model_dir, words


@pytest.fixture
def home_and_cwd(tmp_path, monkeypatch):
    """A private home and working directory, with the old package's folders searched in them."""
    home, work = tmp_path / 'home', tmp_path / 'work'
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv('HOME', str(home))
    monkeypatch.chdir(work)
    monkeypatch.delenv('KOBERT_GLUON_LEGACY_DIRS', raising=False)
    return home, work


# ---------------------------------------------------------------------------- pretrained weights

@pytest.fixture(scope='session')
def bert_12_768_12_params(tmp_path_factory, kobert_dir):
    """A params file saved from gluonnlp's own bert_12_768_12 with KoBERT's vocab: SKT's layout
    (encoder, pooler, NSP classifier, MLM decoder), random weights. About 350 MB."""
    import gluonnlp as nlp
    import mxnet as mx
    from kobert_gluon.text.tokenizer import get_vocab

    vocab = get_vocab(kobert_dir=str(kobert_dir))
    model, _ = nlp.model.get_model('bert_12_768_12', vocab=vocab, pretrained=False, use_pooler=True,
                                   use_decoder=True, use_classifier=True)
    model.initialize(init=mx.init.Normal(0.02))
    model(mx.nd.ones((1, 4)), mx.nd.zeros((1, 4)), mx.nd.array([4]), mx.nd.array([[1]]))  # infer shapes
    path = tmp_path_factory.mktemp('bert_12_768_12') / 'bert_12_768_12.params'
    model.save_parameters(str(path))
    return path


@pytest.fixture(scope='session')
def ner_run(tmp_path_factory):
    """A tiny tagger trained once on helpers.entity_rows (JSONL, stride windows): ``(classifier, run
    folder, data file)``."""
    from helpers import entity_rows, run_config, tiny_bert, write_entity_jsonl
    from kobert_gluon.training.finetune import train

    folder = tmp_path_factory.mktemp('ner-run')
    data = write_entity_jsonl(folder / 'entities.jsonl', entity_rows(160) + entity_rows(16, seed=1, clauses=3))
    with pytest.MonkeyPatch.context() as patch:
        tiny_bert(patch, dropout=0.1)
        config = run_config(folder, data, 'run', task='token_classification', max_len=24, stride=6, num_epochs=6,
                            learning_rate=5e-3, batch_size=16)
        return train(config), folder / 'run', data
