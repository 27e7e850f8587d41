"""kobert-gluon serve: a real server process on 127.0.0.1, its API (three body shapes, the
OpenAPI description and /docs FastAPI makes from the pydantic models), batching, bad input,
SIGTERM, and the web page clicked through in headless Chromium."""
import ast
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request

import numpy as np
import pytest

import kobert_gluon
from kobert_gluon.inference.classifier import calibration_sample
from kobert_gluon import cli
from hangguard import hang_guard

pytestmark = pytest.mark.extra  # needs the serve extra; CI runs the module again with it installed

MAX_TEXTS = 16
MAX_BODY_BYTES = 64 * 1024
SENTENCES = ['배송이 빨라서 좋았어요', '', '다시는 안 삽니다 😡', '   ', '漢字 섞인 文章', 'KoBERT 2.0 최고 100점',
             '정말 최고의 영화였습니다 ' * 300]  # the last one is cut at max_len, as predict does
READY = re.compile(r'serving \S+ on http://([\d.]+):(\d+)/')
STARTUP_S = hang_guard(60)
ARTIFACTS_ENV = 'KOBERT_GLUON_TEST_ARTIFACTS'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--hide-scrollbars', '--window-size=900,1000']


def need(module):
    """The serve extra and the browser are CI requirements; elsewhere their absence skips."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get('KOBERT_GLUON_REQUIRE_EXTRAS'):  # CI's second phase, after installing every extra
            pytest.fail(f'{module} is not installed; CI must install it (.ci/run)')
        pytest.skip(f'{module} is not installed')


# ---------------------------------------------------------------------------- a server process

class ServerProcess:
    """``kobert-gluon serve`` on 127.0.0.1 and a free port; its log is collected as it runs."""

    def __init__(self, model_dir, *flags):
        command = [sys.executable, '-m', 'kobert_gluon.cli', 'serve', '--model', str(model_dir),
                   '--host', '127.0.0.1', '--port', '0', *map(str, flags)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, encoding='utf-8')
        self.log, self.address, self.ready = [], None, threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + STARTUP_S
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail('server did not start:\n' + self.log_text())

    def _read_log(self):
        for line in self.process.stderr:
            self.log.append(line)
            found = READY.search(line)
            if found:
                self.address = (found.group(1), int(found.group(2)))
            if 'model ready' in line and self.address:
                self.ready.set()

    def log_text(self):
        return ''.join(self.log)

    @property
    def url(self):
        return 'http://%s:%d' % self.address

    def call(self, method, path, body=None, headers=None):
        """``(status, content type, decoded JSON or raw bytes)``."""
        connection = http.client.HTTPConnection(*self.address, timeout=hang_guard(30))
        try:
            headers = headers or {}
            connection.request(method, path, body=body, headers=headers,
                               encode_chunked=headers.get('Transfer-Encoding') == 'chunked')
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        content_type = response.getheader('content-type', '')
        return response.status, content_type, json.loads(data) if content_type == 'application/json' else data

    def post(self, body):
        """``(status, decoded JSON)`` of POST /predict with ``body`` as JSON."""
        status, _, answer = self.call('POST', '/predict', json.dumps(body), {'Content-Type': 'application/json'})
        return status, answer

    def predict(self, texts):
        status, answer = self.post({'texts': texts})
        assert status == 200, answer
        return answer['predictions']

    def health(self):
        status, _, answer = self.call('GET', '/health')
        assert status == 200
        return answer

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        """SIGTERM, then a kill if it has not exited within a minute."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        finally:
            self.kill()


@pytest.fixture(scope='module')
def server(demo_model_dir):
    need('fastapi'), need('uvicorn')
    process = ServerProcess(demo_model_dir, '--max_texts', MAX_TEXTS, '--max_body_bytes', MAX_BODY_BYTES,
                            '--max_wait_ms', 20)
    yield process
    process.stop()


def assert_records_match(records, texts, classifier):
    """``records`` are predict_records of ``texts``: labels equal, probabilities within 1e-6."""
    assert [record['text'] for record in records] == texts
    scored = [i for i, text in enumerate(texts) if text.strip()]
    expected = classifier.predict_proba([texts[i] for i in scored])
    names = classifier.label_map.names
    for i, record in enumerate(records):
        if i not in scored:
            assert record['label'] is None and record['probabilities'] is None
    got = np.array([[records[i]['probabilities'][name] for name in names] for i in scored])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert [records[i]['label'] for i in scored] == [names[j] for j in expected.argmax(axis=1)]


# ---------------------------------------------------------------------------- the API

def test_predict_round_trip_equals_predict_proba(server, demo_classifier):
    records = server.predict(SENTENCES)
    assert_records_match(records, SENTENCES, demo_classifier)
    assert all(set(record) == {'text', 'label', 'probabilities'} for record in records)


def test_16_concurrent_clients_each_get_their_own_answers_in_order(server, demo_classifier):
    pool = [text for text in SENTENCES if text.strip()]
    # Each request differs (its number is in its texts) and has 1-4 texts, so a mix-up shows.
    requests = [[f'{pool[(k + j) % len(pool)][:60]} {k}' for j in range(1 + k % 4)] for k in range(200)]
    batches_before = server.health()['batches']
    with concurrent.futures.ThreadPoolExecutor(16) as clients:
        answers = list(clients.map(server.predict, requests))
    forward_batches = server.health()['batches'] - batches_before
    every_text = [text for texts in requests for text in texts]
    expected = dict(zip(every_text, demo_classifier.predict_proba(every_text)))
    names = demo_classifier.label_map.names
    for texts, records in zip(requests, answers):
        assert [record['text'] for record in records] == texts
        for text, record in zip(texts, records):
            np.testing.assert_allclose([record['probabilities'][name] for name in names], expected[text], atol=1e-6)
    assert forward_batches < len(requests), 'concurrent requests were never merged into one batch'


def test_metadata_describes_the_model(server, demo_classifier, demo_model_dir):
    status, _, info = server.call('GET', '/metadata')
    assert status == 200
    assert info['labels'] == demo_classifier.label_map.names
    assert info['max_len'] == demo_classifier.max_len
    assert info['bert'] == demo_classifier.bert_config.to_dict()
    assert info['library_version'] == kobert_gluon.__version__
    assert info['limits']['max_texts'] == MAX_TEXTS and info['limits']['batching'] is True
    for entry in info['tokenizer'].values():
        data = (demo_model_dir / 'tokenizer' / entry['file']).read_bytes()
        assert entry['md5'] == hashlib.md5(data).hexdigest()
    recorded = (demo_classifier.training or {}).get('base_weights')
    assert info['base_weights'] == (None if recorded is None else {'kind': recorded['kind'],
                                                                   'name': recorded.get('name')})


@pytest.mark.parametrize('training, expected', [
    (None, None), ({}, None), ('not a record', None), ({'split': {}}, None), ({'base_weights': None}, None),
    ({'base_weights': {'name': 'bert'}}, None), ({'base_weights': {'kind': 3}}, None), ({'base_weights': [1]}, None),
    ({'base_weights': 'random'}, {'kind': 'random', 'name': None}),
    ({'base_weights': {'kind': 'random', 'name': 7, 'seed': 1}}, {'kind': 'random', 'name': None}),
    ({'base_weights': {'kind': 'kobert', 'name': 'skt/kobert-base-v1'}},
     {'kind': 'kobert', 'name': 'skt/kobert-base-v1'}),
    ({'base_weights': {'kind': 'file', 'name': '/home/me/bert.params'}}, {'kind': 'file', 'name': 'bert.params'}),
])
def test_base_weights_are_read_defensively(serve_module, training, expected):
    assert serve_module.base_weights(types.SimpleNamespace(training=training)) == expected
    assert serve_module.base_weights(object()) is None  # a classifier that predates the attribute


def test_health_counts_the_sentences_classified(server):
    before = server.health()
    server.predict(['좋아요', '싫어요', ''])
    after = server.health()
    assert after['status'] == 'ok'
    assert after['sentences'] - before['sentences'] == 3


ROUTES = {('get', '/'), ('post', '/predict'), ('get', '/health'), ('get', '/metadata')}  # and /openapi.json, /docs
REQUEST_MODELS = {'TextsRequest': 'texts', 'TextRequest': 'text', 'HFRequest': 'inputs'}


def test_openapi_describes_every_endpoint_and_error(server, demo_classifier):
    status, _, schema = server.call('GET', '/openapi.json')
    assert status == 200 and schema['openapi'].startswith('3.')
    documented = {(method, path) for path, item in schema['paths'].items() for method in item}
    assert documented == ROUTES
    for method, path in documented - {('post', '/predict')}:
        status, content_type, _ = server.call(method.upper(), path)
        assert status == 200
        assert content_type.split(';')[0] in schema['paths'][path][method]['responses']['200']['content']
    predict_errors = set(schema['paths']['/predict']['post']['responses']) - {'200'}
    assert predict_errors == {str(status) for _, _, status, _ in BAD_INPUTS.values()}
    label = schema['components']['schemas']['Prediction']['properties']['label']
    variants = label.get('anyOf', [label])  # pydantic writes Optional[Literal[...]] as anyOf
    assert [variant['enum'] for variant in variants if 'enum' in variant] == [demo_classifier.label_map.names]
    assert {'type': 'null'} in variants


def test_docs_and_openapi_are_made_from_the_request_models(server):
    status, content_type, page = server.call('GET', '/docs')
    assert status == 200 and content_type.startswith('text/html')
    assert b'/openapi.json' in page and b'swagger' in page.lower()
    # Swagger UI comes from this server (the fastapi-offline package's copy), not from a CDN
    assert not re.findall(rb'(?:src|href)=["\']?(?:https?:)?//', page), page
    linked = re.findall(r'(?:src|href)=["\']?(/[^"\' >]+)', page.decode('utf-8'))
    assert {url.rsplit('/', 1)[1] for url in linked} >= {'swagger-ui-bundle.js', 'swagger-ui.css'}
    for url in linked:
        status, _, asset = server.call('GET', url)
        assert status == 200 and len(asset) > 100, url
    status, _, schema = server.call('GET', '/openapi.json')
    assert status == 200
    models = schema['components']['schemas']
    body = schema['paths']['/predict']['post']['requestBody']['content']['application/json']['schema']
    assert [variant['$ref'].rsplit('/', 1)[1] for variant in models[body['$ref'].rsplit('/', 1)[1]]['oneOf']] \
        == list(REQUEST_MODELS)
    for name, field in REQUEST_MODELS.items():
        assert models[name]['required'] == [field] and models[name]['additionalProperties'] is False
    assert models['TextsRequest']['properties']['texts']['maxItems'] == MAX_TEXTS
    assert models['TextsRequest']['properties']['texts']['minItems'] == 1
    answers = schema['paths']['/predict']['post']['responses']['200']['content']['application/json']['schema']
    assert {'$ref': '#/components/schemas/PredictResponse'} in answers['anyOf']
    for status in ('400', '413', '415', '422'):
        error = schema['paths']['/predict']['post']['responses'][status]['content']['application/json']['schema']
        assert error == {'$ref': '#/components/schemas/Error'}


def test_one_text_is_answered_as_a_list_of_one(server, demo_classifier):
    status, answer = server.post({'text': '배송이 빨라서 좋았어요'})
    assert status == 200, answer
    assert set(answer) == {'predictions'} and len(answer['predictions']) == 1
    assert_records_match(answer['predictions'], ['배송이 빨라서 좋았어요'], demo_classifier)
    status, answer = server.post({'text': ' '})
    assert status == 200, answer
    assert answer == {'predictions': [{'text': ' ', 'label': None, 'probabilities': None}]}


def assert_hf_answer(answer, texts, classifier, top_k=None):
    """``answer`` is Hugging Face's text-classification answer for ``texts``: per text its
    ``{label, score}`` by score, highest first; [] for a blank text."""
    assert isinstance(answer, list) and len(answer) == len(texts)
    names = classifier.label_map.names
    for text, scored in zip(texts, answer):
        if not text.strip():
            assert scored == []
            continue
        probabilities = dict(zip(names, classifier.predict_proba([text])[0]))
        assert all(set(item) == {'label', 'score'} for item in scored)
        assert [item['label'] for item in scored] == sorted(names, key=lambda name: -probabilities[name])[:top_k]
        np.testing.assert_allclose([item['score'] for item in scored],
                                   [probabilities[item['label']] for item in scored], rtol=0, atol=1e-6)


def test_hugging_face_inputs_are_answered_in_hugging_face_shape(server, demo_classifier):
    status, answer = server.post({'inputs': '배송이 빨라서 좋았어요'})  # a string: a list of one list
    assert status == 200, answer
    assert_hf_answer(answer, ['배송이 빨라서 좋았어요'], demo_classifier)
    texts = ['다시는 안 삽니다 😡', '  ', '漢字 섞인 文章']
    status, answer = server.post({'inputs': texts})
    assert status == 200, answer
    assert_hf_answer(answer, texts, demo_classifier)
    status, answer = server.post({'inputs': texts, 'parameters': {'top_k': 1, 'function_to_apply': 'softmax'},
                                  'options': {'wait_for_model': True}})
    assert status == 200, answer
    assert_hf_answer(answer, texts, demo_classifier, top_k=1)


# ---------------------------------------------------------------------------- bad input

def chunks(data, size=4096):
    return (data[start:start + size] for start in range(0, len(data), size))


JSON = 'application/json'
# name -> (body, content type, status, words the error must contain)
BAD_INPUTS = {
    'invalid JSON': (b'{"texts": ["a",]}', JSON, 400, ['not valid JSON']),
    'truncated JSON': (b'{"texts": ["a"', JSON, 400, ['not valid JSON']),
    'deeply nested JSON': (b'[' * 50000, JSON, 400, ['not valid JSON']),
    'non-UTF-8 bytes': ('{"texts": ["좋아요"]}'.encode('euc-kr'), JSON, 400, ['UTF-8']),
    'not an object': (b'["a", "b"]', JSON, 422, ['{"texts": [...]}', 'an array']),
    'missing texts': (b'{"text": ["a"]}', JSON, 422, ['{"texts": [...]}']),
    'unknown field': (b'{"texts": ["a"], "path": "/etc/passwd"}', JSON, 422, ['unknown fields', 'path']),
    'texts is a string': (b'{"texts": "a"}', JSON, 422, ['"texts"', 'a string']),
    'texts is null': (b'{"texts": null}', JSON, 422, ['"texts"', 'null']),
    'a number among texts': (b'{"texts": ["a", 3]}', JSON, 422, ['texts[1]', 'a number']),
    'an object among texts': (b'{"texts": [{"a": 1}]}', JSON, 422, ['texts[0]', 'an object']),
    'empty list': (b'{"texts": []}', JSON, 422, ['empty']),
    'lone surrogate': (b'{"texts": ["ok", "bad \\ud800 half"]}', JSON, 422, ['texts[1]', 'surrogate']),
    'too many texts': (json.dumps({'texts': ['a'] * (MAX_TEXTS + 1)}).encode(), JSON, 413,
                       [str(MAX_TEXTS + 1), '--max_texts']),
    'body too large': (json.dumps({'texts': ['가' * MAX_BODY_BYTES]}).encode(), JSON, 413, ['--max_body_bytes']),
    'chunked body too large': (lambda: chunks(json.dumps({'texts': ['a' * MAX_BODY_BYTES]}).encode()), JSON, 413,
                               ['--max_body_bytes']),
    'form content type': (b'texts=a', 'application/x-www-form-urlencoded', 415, ['application/json']),
    'no content type': (b'{"texts": ["a"]}', None, 415, ['application/json']),
    'a charset other than UTF-8': ('{"texts": ["좋아요"]}'.encode('euc-kr'), 'application/json; charset=euc-kr',
                                   415, ['UTF-8']),
    'no known field': (b'{"txt": "a"}', JSON, 422, ['{"texts": [...]}', '{"inputs": ...}', 'txt']),
    'two shapes at once': (b'{"texts": ["a"], "text": "b"}', JSON, 422, ['unknown fields', "'text'"]),
    # {"text": "..."}
    'text is a number': (b'{"text": 3}', JSON, 422, ['"text"', 'a number', 'a string']),
    'text is null': (b'{"text": null}', JSON, 422, ['"text"', 'null']),
    'text with an unknown field': (b'{"text": "a", "top_k": 1}', JSON, 422, ['unknown fields', 'top_k']),
    'text with a lone surrogate': (b'{"text": "bad \\udfff"}', JSON, 422, ['"text"', 'surrogate']),
    'text too large': (json.dumps({'text': '가' * MAX_BODY_BYTES}).encode(), JSON, 413, ['--max_body_bytes']),
    # {"inputs": ...}, Hugging Face's
    'inputs is a number': (b'{"inputs": 3}', JSON, 422, ['"inputs"', 'a number', 'a string or an array']),
    'a pair to a single-sentence model': (b'{"inputs": {"text": "a", "text_pair": "b"}}', JSON, 422,
                                          ['"inputs"', 'single sentences']),
    'text_pairs to a single-sentence model': (b'{"texts": ["a"], "text_pairs": ["b"]}', JSON, 422,
                                              ['"text_pairs"', 'single sentences']),
    'threshold to a classifier': (b'{"text": "a", "threshold": 0.3}', JSON, 422, ['"threshold"', 'multi-label']),
    'another function_to_apply': (b'{"inputs": "a", "parameters": {"function_to_apply": "sigmoid"}}', JSON, 422,
                                  ['function_to_apply', "'softmax'"]),
    'inputs object with another field': (b'{"inputs": {"txt": "a"}}', JSON, 422, ['unknown fields', 'txt']),
    'null among inputs': (b'{"inputs": ["a", null]}', JSON, 422, ['inputs[1]', 'null']),
    'inputs is empty': (b'{"inputs": []}', JSON, 422, ['"inputs"', 'empty']),
    'too many inputs': (json.dumps({'inputs': ['a'] * (MAX_TEXTS + 1)}).encode(), JSON, 413,
                        [str(MAX_TEXTS + 1), '--max_texts']),
    'inputs too large': (json.dumps({'inputs': ['가' * MAX_BODY_BYTES]}).encode(), JSON, 413, ['--max_body_bytes']),
    'top_k of 0': (b'{"inputs": "a", "parameters": {"top_k": 0}}', JSON, 422, ['"parameters.top_k"']),
    'a sigmoid asked for': (b'{"inputs": "a", "parameters": {"function_to_apply": "sigmoid"}}', JSON, 422,
                            ['"parameters.function_to_apply"', 'softmax']),
    'an unknown parameter': (b'{"inputs": "a", "parameters": {"temperature": 2}}', JSON, 422,
                             ['unknown fields', 'temperature', '"parameters"']),
    'inputs with an unknown field': (b'{"inputs": "a", "path": "/etc/passwd"}', JSON, 422, ['unknown fields', 'path']),
}


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_bad_input_gets_a_json_error_and_the_server_lives_on(server, case):
    body, content_type, expected_status, words = BAD_INPUTS[case]
    headers = {'Content-Type': content_type} if content_type else {}
    if callable(body):  # an iterable body goes out with Transfer-Encoding: chunked, no length
        body, headers['Transfer-Encoding'] = body(), 'chunked'
    status, response_type, answer = server.call('POST', '/predict', body, headers)
    assert status == expected_status, answer
    assert response_type == 'application/json' and set(answer) == {'error'}
    assert '\n' not in answer['error'] and len(answer['error']) < 300, answer  # one line
    for word in words:
        assert word in answer['error']
    assert server.health()['status'] == 'ok'
    assert server.predict(['그래도 잘 됩니다'])[0]['label'] is not None


@pytest.mark.parametrize('method, path, expected', [('GET', '/predict', 405), ('GET', '/nowhere', 404),
                                                    ('GET', '/static/../serve.py', 404)])
def test_wrong_routes_get_json_errors(server, method, path, expected):
    status, content_type, answer = server.call(method, path)
    assert status == expected and content_type == 'application/json' and 'error' in answer


# ---------------------------------------------------------------------------- batching

@pytest.fixture()
def serve_module():
    need('fastapi'), need('uvicorn')
    from kobert_gluon.serve import app as serve
    return serve


WEB_MODULES = {'fastapi', 'starlette', 'uvicorn', 'pydantic', 'pydantic_core', 'anyio', 'httpx'}


def test_the_batcher_imports_no_web_framework():
    from kobert_gluon.serve import batcher

    tree = ast.parse(open(batcher.__file__, encoding='utf-8').read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported and not {name.split('.')[0] for name in imported} & WEB_MODULES


@pytest.mark.parametrize('batching, max_batch, sizes, expected_batches', [
    (True, 64, [1, 2, 3, 1], 1),    # queued together: one forward batch
    (False, 64, [1, 2, 3, 1], 4),   # switched off: one per request
    (True, 4, [3, 3, 2, 2], 3),     # 3 | 3 | 2+2: a request that would overflow waits for the next batch
    (True, 2, [5, 1], 2),           # a request over max_batch runs alone, in passes of max_batch
])
def test_batcher_merges_requests_and_returns_each_its_own(demo_classifier, batching, max_batch, sizes,
                                                          expected_batches):
    from kobert_gluon.serve.batcher import Batcher, Limits

    limits = Limits(max_batch=max_batch, max_wait_ms=0, batching=batching)  # queued ones still join
    batcher = Batcher(demo_classifier, limits)
    requests = [[f'{SENTENCES[(k + j) % 3] or "빈칸"} {k}-{j}' for j in range(size)] for k, size in enumerate(sizes)]
    futures = [batcher.submit(texts) for texts in requests]  # all queued before the thread starts
    batcher.start()
    try:
        answers = [future.result(60) for future in futures]
    finally:
        batcher.stop()
    assert batcher.batches == expected_batches
    assert batcher.sentences == sum(sizes)
    for texts, records in zip(requests, answers):
        assert_records_match(records, texts, demo_classifier)


# ---------------------------------------------------------------------------- the command

def test_serve_help_works_without_the_extra(monkeypatch, capsys):
    hidden = ('fastapi', 'starlette', 'uvicorn')
    for name in [name for name in sys.modules if name.split('.')[0] in hidden] + list(hidden):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    monkeypatch.delitem(sys.modules, 'kobert_gluon.serve.app', raising=False)
    if 'kobert_gluon.serve' in sys.modules:  # else `from ..serve import app` finds the module already loaded
        monkeypatch.delattr(sys.modules['kobert_gluon.serve'], 'app', raising=False)
    assert cli.main(['serve', '--help']) == 0
    out = capsys.readouterr().out
    for flag in ('--max_batch', '--max_wait_ms', '--no-batching', '--max_texts', '--max_body_bytes', '--dtype'):
        assert flag in out
    assert cli.main(['serve', '--model', 'anything']) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith('kobert-gluon: error: ') and '\n' not in error
    assert 'kobert_gluon[serve]' in error


def test_serve_flags_reach_the_server(serve_module, monkeypatch, demo_model_dir):
    started = {}
    monkeypatch.setattr(serve_module, 'run', lambda classifier, host, port, limits: started.update(
        classifier=classifier, host=host, port=port, limits=limits))
    assert cli.main(['serve', '--model', str(demo_model_dir), '--no-batching', '--max_batch', '8', '--max-wait-ms',
                     '2.5', '--max_texts', '3', '--max-body-bytes', '999', '--port', '0']) == 0
    assert started['limits'] == serve_module.Limits(max_batch=8, max_wait_ms=2.5, batching=False, max_texts=3,
                                                    max_body_bytes=999)
    assert (started['host'], started['port'], started['classifier'].dtype) == ('127.0.0.1', 0, 'float32')
    assert cli.main(['serve', '--model', str(demo_model_dir)]) == 0
    assert started['limits'] == serve_module.Limits() and started['port'] == 8000


def test_bad_serve_flags_are_one_line_errors(serve_module, capsys, demo_model_dir):
    assert cli.main(['serve', '--model', str(demo_model_dir), '--max_wait_ms', '-1']) == 2
    assert 'kobert-gluon: error: --max_wait_ms -1' in capsys.readouterr().err
    with socket.create_server(('127.0.0.1', 0)) as busy:
        port = busy.getsockname()[1]
        assert cli.main(['serve', '--model', str(demo_model_dir), '--port', str(port)]) == 2
    assert f'kobert-gluon: error: cannot listen on 127.0.0.1:{port}' in capsys.readouterr().err


def test_int8_server_and_sigterm_lets_the_request_in_flight_finish_then_exit_0(demo_model_dir, demo_classifier):
    need('fastapi'), need('uvicorn')
    server = ServerProcess(demo_model_dir, '--dtype', 'int8')  # calibrated on the built-in sample
    texts = ['끝까지 답을 받습니다', '종료 중에도']
    body = json.dumps({'texts': texts}, ensure_ascii=False).encode('utf-8')
    try:
        assert server.call('GET', '/metadata')[2]['dtype'] == 'int8'
        with socket.create_connection(server.address, timeout=hang_guard(10)) as client:
            client.sendall(b'POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n'
                           b'Content-Length: %d\r\n\r\n' % len(body) + body[:10])
            time.sleep(1.0)  # the server has the headers: the request is in flight
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            client.sendall(body[10:])
            response = read_http_response(client)
        assert server.process.wait(60) == 0, server.log_text()
    finally:
        server.kill()
    status_line, _, payload = response.partition(b'\r\n')
    assert b' 200 ' in status_line, response
    records = json.loads(payload.split(b'\r\n\r\n', 1)[1])['predictions']
    assert_records_match(records, texts, demo_classifier.with_precision('int8', calibration_sample()))
    assert 'Shutting down' in server.log_text()


def read_http_response(client):
    """Everything until the server closes (it does: it is shutting down)."""
    data = b''
    while True:
        chunk = client.recv(65536)
        if not chunk:
            return data
        data += chunk


# ---------------------------------------------------------------------------- the page in Chromium

class Chromium:
    """Debian's headless chromium, driven over the DevTools protocol with websocket-client."""

    def __init__(self, executable, profile_dir):
        self.profile_dir = profile_dir
        log = open(profile_dir.parent / 'chromium.log', 'wb')
        self.process = subprocess.Popen([executable, *CHROMIUM_FLAGS, f'--user-data-dir={profile_dir}',
                                         '--remote-debugging-port=0', 'about:blank'],
                                        stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.next_id, self.events = 0, []
        self.socket = need('websocket').create_connection(self._page_websocket(), timeout=hang_guard(10), suppress_origin=True)

    def _page_websocket(self):
        port_file = self.profile_dir / 'DevToolsActivePort'
        deadline = time.monotonic() + hang_guard(30)
        while not (port_file.exists() and port_file.read_text().count('\n') >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail('chromium did not start: ' + (self.profile_dir.parent / 'chromium.log').read_text())
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=hang_guard(10)) as response:
            targets = json.load(response)
        return next(target['webSocketDebuggerUrl'] for target in targets if target['type'] == 'page')

    def send(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({'id': self.next_id, 'method': method, 'params': params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get('id') == self.next_id:
                assert 'error' not in message, f'{method}: {message["error"]}'
                return message['result']
            self.events.append(message)

    def evaluate(self, expression):
        result = self.send('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=True)
        assert 'exceptionDetails' not in result, result
        return result['result'].get('value')

    def wait_for(self, expression, timeout=hang_guard(30)):
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f'timed out waiting for {expression}'
            time.sleep(0.1)

    def click(self, selector):
        box = self.evaluate(f'(() => {{ const r = document.querySelector({json.dumps(selector)})'
                            '.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()')
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent', type=kind, x=box[0], y=box[1], button='left', clickCount=1)

    def press_enter(self):
        for kind in ('keyDown', 'keyUp'):
            self.send('Input.dispatchKeyEvent', type=kind, key='Enter', code='Enter', windowsVirtualKeyCode=13,
                      **({'text': '\r'} if kind == 'keyDown' else {}))

    def close(self):
        self.socket.close()
        os.killpg(self.process.pid, signal.SIGTERM)  # chromium's helpers share its new session
        self.process.wait(30)


@pytest.fixture()
def chromium(tmp_path):
    executable = shutil.which('chromium') or shutil.which('chromium-browser')
    if not executable:
        if os.environ.get('KOBERT_GLUON_REQUIRE_EXTRAS'):
            pytest.fail('chromium is not installed; .ci/run installs it with apt-get')
        pytest.skip('chromium is not installed (apt-get install chromium)')
    need('websocket')
    browser = Chromium(executable, tmp_path / 'profile')
    yield browser
    browser.close()


def test_web_page_classifies_two_sentences_in_chromium(server, chromium, demo_classifier, tmp_path,
                                                       record_property, capsys):
    sentences = ['배송이 빨라서 정말 좋았어요', '다시는 안 삽니다. 최악이에요']
    chromium.send('Runtime.enable')
    chromium.send('Page.navigate', url=server.url + '/')
    chromium.wait_for("document.readyState === 'complete' && "
                      "document.getElementById('model').textContent.includes('max_len')")
    chromium.click('#texts')
    chromium.send('Input.insertText', text=sentences[0])
    chromium.press_enter()
    chromium.send('Input.insertText', text=sentences[1])
    assert chromium.evaluate("document.getElementById('texts').value") == '\n'.join(sentences)
    chromium.click('#classify')
    chromium.wait_for("document.querySelectorAll('#results .result').length === 2")
    shown = chromium.evaluate("[...document.querySelectorAll('#results .result')].map(card => ["
                              "card.querySelector('.text').textContent, card.querySelector('.label').textContent, "
                              "[...card.querySelectorAll('.bar .value')].map(v => parseFloat(v.textContent))])")
    expected = demo_classifier.predict_proba(sentences)
    assert [text for text, _, _ in shown] == sentences
    assert [label for _, label, _ in shown] == demo_classifier.predict(sentences)
    np.testing.assert_allclose([bars for _, _, bars in shown], 100 * expected, atol=0.051)
    assert not [event for event in chromium.events if event.get('method') == 'Runtime.exceptionThrown']
    assert chromium.evaluate("getComputedStyle(document.querySelector('#results .text')).wordBreak") == 'keep-all'
    kind = (server.call('GET', '/metadata')[2]['base_weights'] or {}).get('kind')
    assert chromium.evaluate("document.getElementById('notice').hidden") == (kind != 'random')
    save_screenshot(chromium, 'serve-page.png', tmp_path, record_property, capsys)


def test_docs_page_renders_offline_in_chromium(server, chromium):
    chromium.send('Runtime.enable')
    chromium.send('Page.navigate', url=server.url + '/docs')
    chromium.wait_for("document.querySelector('.swagger-ui .info .title') !== null && "
                      "document.querySelectorAll('.swagger-ui .opblock').length > 0")
    assert 'kobert-gluon serve' in chromium.evaluate("document.querySelector('.swagger-ui .info .title').textContent")
    paths = chromium.evaluate("[...document.querySelectorAll('.swagger-ui .opblock-summary-path')].map(p => p.textContent)")
    assert {'/predict', '/health', '/metadata'} <= {path.replace('\u200b', '') for path in paths}


def save_screenshot(chromium, name, tmp_path, record_property, capsys):
    artifacts = os.environ.get(ARTIFACTS_ENV)
    folder = os.path.abspath(artifacts) if artifacts else str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    screenshot = os.path.join(folder, name)
    with open(screenshot, 'wb') as out:
        out.write(base64.b64decode(chromium.send('Page.captureScreenshot', format='png')['data']))
    record_property(name, screenshot)
    with capsys.disabled():  # shown in the test log even when the test passes
        print(f'\nscreenshot of the served page: {screenshot}')
    assert os.path.getsize(screenshot) > 10_000


def test_the_stylesheet_breaks_korean_between_words(server):
    status, content_type, css = server.call('GET', '/static/style.css')
    assert status == 200 and content_type.startswith('text/css')
    css = css.decode('utf-8')
    rules = {selector.strip(): body for selector, body in re.findall(r'([^{}]+)\{([^}]*)\}', css)}
    for selector in ('body', '.result .text'):  # the page's text inherits it; the cards say it again
        assert re.search(r'word-break:\s*keep-all', rules[selector]), selector
        assert re.search(r'overflow-wrap:\s*anywhere', rules[selector]), selector
    assert 'break-all' not in css


# Where each line of the first card's text starts, and how many start inside a word.
LINE_STARTS = '''(() => {
  const node = document.querySelector('#results .result .text').firstChild, text = node.textContent;
  const range = document.createRange(), starts = [];
  let top = null;
  for (let i = 0; i < text.length; i++) {
    range.setStart(node, i); range.setEnd(node, i + 1);
    const rect = range.getClientRects()[0];
    if (!rect || !rect.width) continue;  // a space that ends a line takes no room
    if (top !== null && rect.top > top + 1) starts.push(i);
    top = rect.top;
  }
  return [starts.length, starts.filter((i) => text[i - 1] !== ' ' && text[i] !== ' ').length];
})()'''


def test_untrained_demo_page_says_so_and_breaks_korean_between_words_at_phone_width(
        demo_model_dir, chromium, tmp_path, record_property, capsys):
    need('fastapi'), need('uvicorn')
    model_dir = tmp_path / 'random-demo'
    shutil.copytree(demo_model_dir, model_dir)
    config = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
    config['training'] = {**(config.get('training') or {}), 'base_weights': {'kind': 'random', 'name': None}}
    (model_dir / 'config.json').write_text(json.dumps(config, ensure_ascii=False), encoding='utf-8')
    server = ServerProcess(model_dir)
    try:
        assert server.call('GET', '/metadata')[2]['base_weights'] == {'kind': 'random', 'name': None}
        chromium.send('Emulation.setDeviceMetricsOverride', width=360, height=740, deviceScaleFactor=1, mobile=True)
        chromium.send('Page.navigate', url=server.url + '/')
        chromium.wait_for("document.readyState === 'complete' && !document.getElementById('notice').hidden")
        text, width, height = chromium.evaluate(
            "(() => { const n = document.getElementById('notice'), r = n.getBoundingClientRect(); "
            "return [n.textContent, r.width, r.height]; })()")
        assert '무작위' in text and 'random' in text and width > 0 and height > 0
        sentence = ' '.join(['배송이 빨라서 정말 좋았어요, 다시 주문할게요.'] * 4)
        chromium.evaluate(f"document.getElementById('texts').value = {json.dumps(sentence)}")
        chromium.click('#classify')
        chromium.wait_for("document.querySelectorAll('#results .result').length === 1")
        lines, inside_words = chromium.evaluate(LINE_STARTS)
        assert lines >= 2 and inside_words == 0, (lines, inside_words)
        assert chromium.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
        save_screenshot(chromium, 'serve-page-phone.png', tmp_path, record_property, capsys)
    finally:
        server.stop()


def test_accepted_connections_send_without_nagle_delay(serve_module):
    """Without TCP_NODELAY every kept-alive request waited ~40 ms for the client's delayed ACK."""
    import asyncio

    async def nodelay_of_accepted_connection():
        accepted = asyncio.get_running_loop().create_future()

        def on_connection(reader, writer):
            accepted.set_result(writer.get_extra_info('socket').getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
        server = await asyncio.start_server(on_connection, sock=serve_module.listen('127.0.0.1', 0))
        async with server:
            _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            value = await asyncio.wait_for(accepted, 30)
            writer.close()
        return value

    assert asyncio.run(nodelay_of_accepted_connection()) != 0


def test_serve_benchmark_runs_both_settings(demo_model_dir, tmp_path):
    need('fastapi'), need('uvicorn')
    rows_file = tmp_path / 'rows.json'
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'benchmarks', 'serve.py')
    done = subprocess.run([sys.executable, script, '--models', 'demo', '--demo-model', str(demo_model_dir),
                           '--clients', '2', '--duration', '1', '--warmup', '0.2', '--json', str(rows_file)],
                          capture_output=True, text=True, encoding='utf-8', timeout=hang_guard(60))
    assert done.returncode in (0, 1), done.stderr  # 1: batching was not faster, possible in one second
    rows = json.loads(rows_file.read_text(encoding='utf-8'))['rows']
    assert [(row['batching'], row['clients']) for row in rows] == [('on', 2), ('off', 2)]
    assert all(row['requests'] > 0 and row['p50_ms'] <= row['p99_ms'] for row in rows)
    assert 'dynamic batching on/off throughput at 2 clients' in done.stdout


# ---------------------------------------------------------------------------- pairs, scores, several labels

@pytest.fixture(scope='module')
def task_servers(task_runs):
    """A server for the pair classifier, the pair regression model and the multi-label model."""
    need('fastapi'), need('uvicorn')
    servers = {name: ServerProcess(os.path.join(task_runs[name].run_dir, 'best')) for name in ('nli', 'sts', 'multi')}
    yield servers
    for process in servers.values():
        process.process.send_signal(signal.SIGTERM)
        try:
            process.process.wait(60)
        finally:
            process.kill()


PAIRS = [('오늘 비가 많이 내리고', '하늘이 맑아요'), ('김치찌개가 맛있어요', '라면이 짜요 밥을 먹었어요')]


def test_a_pair_server_takes_our_shapes_and_hugging_faces(task_servers, task_runs):
    server, classifier = task_servers['nli'], task_runs['nli']
    expected = classifier.predict_records(PAIRS)
    status, ours = server.post({'texts': [a for a, _ in PAIRS], 'text_pairs': [b for _, b in PAIRS]})
    assert status == 200
    for record, want in zip(ours['predictions'], expected):
        assert (record['text'], record['text_pair'], record['label']) == (want['text'], want['text_pair'], want['label'])
        assert record['probabilities'] == pytest.approx(want['probabilities'], abs=1e-6)
    status, one = server.post({'text': PAIRS[0][0], 'text_pair': PAIRS[0][1]})
    assert status == 200 and one['predictions'][0]['label'] == expected[0]['label']
    status, hf_one = server.post({'inputs': {'text': PAIRS[0][0], 'text_pair': PAIRS[0][1]}})
    status_list, hf_list = server.post({'inputs': [{'text': a, 'text_pair': b} for a, b in PAIRS],
                                        'parameters': {'top_k': 1}})
    assert (status, status_list) == (200, 200)
    assert hf_one[0][0]['label'] == expected[0]['label'] and len(hf_one[0]) == len(classifier.label_map.names)
    assert [answer[0]['label'] for answer in hf_list] == [want['label'] for want in expected]
    metadata = server.call('GET', '/metadata')[2]
    assert (metadata['task'], metadata['pair']) == ('classification', True)


@pytest.mark.parametrize('body, words', [
    ({'texts': ['한 문장']}, 'reads sentence pairs'),
    ({'inputs': '한 문장'}, 'reads sentence pairs'),
    ({'texts': ['a', 'b'], 'text_pairs': ['c']}, '2 texts but 1 text_pairs'),
    ({'inputs': [{'text': 'a', 'text_pair': 'b'}, {'text': 'c'}]}, 'reads sentence pairs'),
])
def test_a_pair_server_refuses_single_texts_in_one_line(task_servers, body, words):
    status, answer = task_servers['nli'].post(body)
    assert status == 422 and words in answer['error'] and '\n' not in answer['error']


def test_a_regression_server_answers_scores(task_servers, task_runs):
    server, classifier = task_servers['sts'], task_runs['sts']
    scores = classifier.predict(PAIRS)
    status, ours = server.post({'texts': [a for a, _ in PAIRS], 'text_pairs': [b for _, b in PAIRS]})
    assert status == 200 and [record['score'] for record in ours['predictions']] == pytest.approx(scores, abs=1e-5)
    status, hf = server.post({'inputs': [{'text': a, 'text_pair': b} for a, b in PAIRS],
                              'parameters': {'function_to_apply': 'none'}})
    assert status == 200 and [answer[0]['score'] for answer in hf] == pytest.approx(scores, abs=1e-5)
    assert [answer[0]['label'] for answer in hf] == ['score', 'score']
    status, answer = server.post({'inputs': {'text': 'a', 'text_pair': 'b'}, 'parameters': {'function_to_apply': 'softmax'}})
    assert status == 422 and "'none'" in answer['error']


def test_a_multi_label_server_answers_labels_above_the_models_or_the_requests_threshold(task_servers, task_runs):
    server, classifier = task_servers['multi'], task_runs['multi']
    texts = ['오늘 비가 많이 김치찌개가 맛있어요', '축구를 했어요']
    for threshold in (None, 0.05, 0.95):
        body = {'texts': texts, **({'threshold': threshold} if threshold else {})}
        status, answer = server.post(body)
        assert status == 200
        assert [record['labels'] for record in answer['predictions']] == classifier.predict(texts, threshold=threshold)
    status, hf = server.post({'inputs': texts[0], 'parameters': {'function_to_apply': 'sigmoid'}})
    probabilities = dict(zip(classifier.label_map.names, classifier.predict_proba(texts[:1])[0]))
    assert status == 200 and {entry['label']: entry['score'] for entry in hf[0]} == pytest.approx(probabilities, abs=1e-6)
    status, answer = server.post({'text': 'a', 'threshold': 1.5})
    assert status == 422 and 'threshold' in answer['error']
    docs = server.call('GET', '/openapi.json')[2]
    prediction = docs['components']['schemas']['Prediction']['properties']
    assert {'text', 'labels', 'probabilities'} <= set(prediction) and 'label' not in prediction


def test_web_page_has_a_second_box_for_pairs_in_chromium(task_servers, task_runs, chromium, tmp_path,
                                                         record_property, capsys):
    server, classifier = task_servers['sts'], task_runs['sts']
    chromium.send('Runtime.enable')
    chromium.send('Emulation.setDeviceMetricsOverride', width=360, height=800, deviceScaleFactor=1, mobile=True)
    chromium.send('Page.navigate', url=server.url + '/')
    chromium.wait_for("document.readyState === 'complete' && !document.getElementById('pair-box').hidden")
    for box, texts in (('#texts', [a for a, _ in PAIRS]), ('#text-pairs', [b for _, b in PAIRS])):
        chromium.click(box)
        chromium.send('Input.insertText', text=texts[0])
        chromium.press_enter()
        chromium.send('Input.insertText', text=texts[1])
    chromium.click('#classify')
    chromium.wait_for("document.querySelectorAll('#results .result').length === 2")
    shown = chromium.evaluate("[...document.querySelectorAll('#results .result')].map(card => ["
                              "card.querySelector('.text').textContent, card.querySelector('.pair').textContent, "
                              "parseFloat(card.dataset.score)])")
    assert [(text, pair) for text, pair, _ in shown] == [(a, '↔ ' + b) for a, b in PAIRS]
    assert [score for _, _, score in shown] == pytest.approx(classifier.predict(PAIRS), abs=1e-5)
    assert not [event for event in chromium.events if event.get('method') == 'Runtime.exceptionThrown']
    save_screenshot(chromium, 'serve-page-pairs-360.png', tmp_path, record_property, capsys)
