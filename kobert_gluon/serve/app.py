"""``kobert-gluon serve``: a JSON API and a Korean web page for a model directory.

Starlette on uvicorn (the optional extra ``kobert_gluon[serve]``). Requests that arrive
within ``max_wait_ms`` of each other are merged into one forward pass of at most
``max_batch`` sentences by :class:`Batcher`, whose one thread is the only one that ever
calls the model: MXNet's engine and a hybridized block are not re-entered from two threads.

Endpoints (also in ``GET /openapi.json``): ``POST /predict``, ``GET /health``,
``GET /metadata``, and the page at ``/`` with its files under ``/static/``. Bad requests get
``{"error": "..."}`` with 400 (body not UTF-8 or not JSON), 413 (body or text count over
the limit), 415 (not ``application/json``) or 422 (valid JSON of the wrong shape); nothing
from a request is ever used as a path or unpickled.
"""
import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import queue
import signal
import socket
import threading
import time
from importlib import resources

from ..text.data import demo_data_path, read_table
from ..errors import ConfigError, MissingExtraError
from ..fileio import PACKAGE
from ..inference.classifier import CALIBRATION_SENTENCES

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as error:  # pragma: no cover - exercised by hiding starlette in a test
    raise MissingExtraError('serve', f'{error.name or "starlette/uvicorn"} (needed by kobert-gluon serve)') from None

logger = logging.getLogger(__name__)

STATIC_DIR = 'static'
GRACEFUL_SHUTDOWN_S = 60  # after SIGTERM, requests in flight get this long to finish
PAGE_HEADERS = {
    # The page loads nothing from elsewhere: no CDN, no inline script.
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
}
JSON_TYPES = {dict: 'an object', list: 'an array', str: 'a string', int: 'a number', float: 'a number',
              bool: 'a boolean', type(None): 'null'}
ERROR_STATUSES = {400: 'body is not UTF-8 or not valid JSON',
                  413: 'body over --max_body_bytes, or more texts than --max_texts',
                  415: 'Content-Type is not application/json',
                  422: 'valid JSON of the wrong shape: not {"texts": [...]}, an empty list, a text that is '
                       'not a string or holds a lone surrogate'}


@dataclasses.dataclass
class Limits:
    """What one request may ask, and how requests are merged into forward passes."""
    max_batch: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    max_texts: int = 256
    max_body_bytes: int = 1 << 20

    def __post_init__(self):
        for name in ('max_batch', 'max_texts', 'max_body_bytes'):
            if getattr(self, name) < 1:
                raise ConfigError(f'--{name} {getattr(self, name)}: must be at least 1')
        if self.max_wait_ms < 0:
            raise ConfigError(f'--max_wait_ms {self.max_wait_ms}: must not be negative')


# ---------------------------------------------------------------------------- batching

Job = collections.namedtuple('Job', 'texts future arrived')
STOP = object()


class Batcher:
    """Runs ``classifier.predict_records`` in one thread on batches merged from many requests.

    A batch starts with the oldest waiting request and takes the next ones while they fit in
    ``max_batch`` texts and arrived within ``max_wait_ms`` of it (requests queued while the
    model was busy join at once). One request larger than ``max_batch`` runs alone, split into
    forward passes of ``max_batch``. With ``batching=False`` each request is its own batch.
    """

    def __init__(self, classifier, limits):
        self.classifier = classifier
        self.limits = limits
        self.batches = 0
        self.sentences = 0
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._work, name='kobert-gluon-model', daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        """Finish the batches already queued, then end the thread."""
        self._jobs.put(STOP)
        self._thread.join()

    def submit(self, texts):
        """A concurrent.futures.Future of ``texts``' records, in order; safe from any thread."""
        future = concurrent.futures.Future()
        self._jobs.put(Job(list(texts), future, time.monotonic()))
        return future

    def _work(self):
        waiting = None
        while True:
            first = waiting or self._jobs.get()
            if first is STOP:
                return
            jobs, waiting = self._collect(first) if self.limits.batching else ([first], None)
            self._run(jobs)

    def _collect(self, first):
        """``(jobs of one batch, the job that did not fit or None)``."""
        jobs, size = [first], len(first.texts)
        deadline = first.arrived + self.limits.max_wait_ms / 1000
        while size < self.limits.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is STOP or size + len(job.texts) > self.limits.max_batch:
                return jobs, job
            jobs.append(job)
            size += len(job.texts)
        return jobs, None

    def _run(self, jobs):
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # clients that left
        texts = [text for job in jobs for text in job.texts]
        if not texts:
            return
        try:
            records = self.classifier.predict_records(texts, self.limits.max_batch)
        except Exception as error:  # a failed batch fails its requests, not the server
            logger.exception('batch of %d texts failed', len(texts))
            for job in jobs:
                job.future.set_exception(error)
            return
        self.batches += 1
        self.sentences += len(texts)
        start = 0
        for job in jobs:
            job.future.set_result(records[start:start + len(job.texts)])
            start += len(job.texts)


# ---------------------------------------------------------------------------- requests

class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def error_response(status, message):
    return JSONResponse({'error': message}, status_code=status)


async def read_texts(request, limits):
    """The ``texts`` of a ``{"texts": [...]}`` body, checked; ApiError says what is wrong."""
    check_content_type(request.headers.get('content-type', ''))
    body = await read_body(request, limits.max_body_bytes)
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError as error:
        raise ApiError(400, f'body is not valid UTF-8 (byte {error.start}: {body[error.start:error.start + 1]!r})') from None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, f'body is not valid JSON ({error})') from None
    return check_texts(payload, limits.max_texts)


def check_content_type(header):
    media_type, *parameters = [part.strip().lower() for part in header.split(';')]
    charsets = [parameter.split('=', 1)[1].strip('"') for parameter in parameters if parameter.startswith('charset=')]
    if media_type != 'application/json' or any(charset not in ('utf-8', 'utf8') for charset in charsets):
        raise ApiError(415, f'Content-Type must be application/json (UTF-8), not {header!r}')


async def read_body(request, limit):
    declared = request.headers.get('content-length', '')
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f'body of {declared} bytes is over the limit of {limit} (--max_body_bytes)')
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads declare no length
            raise ApiError(413, f'body is over the limit of {limit} bytes (--max_body_bytes)')
    return bytes(body)


def check_texts(payload, max_texts):
    if not isinstance(payload, dict) or 'texts' not in payload:
        raise ApiError(422, f'expected a JSON object {{"texts": [...]}}, got {describe(payload)}')
    unknown = sorted(set(payload) - {'texts'})
    if unknown:
        raise ApiError(422, f'unknown fields {unknown}; the body is {{"texts": [...]}}')
    texts = payload['texts']
    if not isinstance(texts, list):
        raise ApiError(422, f'"texts" must be an array of strings, got {describe(texts)}')
    if not texts:
        raise ApiError(422, '"texts" is empty; send at least one string')
    if len(texts) > max_texts:
        raise ApiError(413, f'{len(texts)} texts; at most {max_texts} per request (--max_texts)')
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(422, f'texts[{i}] is {describe(text)}, expected a string')
        try:
            text.encode('utf-8')
        except UnicodeEncodeError as error:  # JSON may escape half of a surrogate pair: "\ud800"
            raise ApiError(422, f'texts[{i}] holds a lone surrogate {text[error.start]!r} at character '
                                f'{error.start}; it is not Unicode text') from None
    return texts


def describe(value):
    return JSON_TYPES.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- the application

def metadata(classifier, limits):
    config = classifier.config_dict()
    return {'labels': classifier.label_map.names, 'max_len': config['max_len'], 'bert': config['bert'],
            'dtype': classifier.dtype, 'library_version': config['library_version'],
            'tokenizer': config['tokenizer'], 'limits': dataclasses.asdict(limits)}


def build_app(classifier, limits):
    """The Starlette application; the model thread runs between its startup and shutdown."""
    batcher = Batcher(classifier, limits)
    model_info = metadata(classifier, limits)  # md5s once, not per request
    schema = openapi_schema(model_info)
    page_html = resources.files(__package__).joinpath(STATIC_DIR, 'index.html').read_bytes()

    async def predict(request):
        try:
            texts = await read_texts(request, limits)
        except ApiError as error:
            logger.info('%s %s: %d %s', request.method, request.url.path, error.status, error)
            return error_response(error.status, str(error))
        records = await asyncio.wrap_future(batcher.submit(texts))
        return JSONResponse({'predictions': records})

    async def health(request):
        return JSONResponse({'status': 'ok', 'batches': batcher.batches, 'sentences': batcher.sentences})

    async def page(request):
        return Response(page_html, media_type='text/html; charset=utf-8', headers=PAGE_HEADERS)

    async def http_error(request, error):
        return error_response(error.status_code, error.detail)

    async def server_error(request, error):
        return error_response(500, f'internal error ({type(error).__name__}); see the server log')

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        warm_up(batcher, classifier)
        yield
        batcher.stop()

    routes = [Route('/', page, methods=['GET']),
              Route('/predict', predict, methods=['POST']),
              Route('/health', health, methods=['GET']),
              Route('/metadata', lambda request: JSONResponse(model_info), methods=['GET']),
              Route('/openapi.json', lambda request: JSONResponse(schema), methods=['GET']),
              Mount('/static', StaticFiles(packages=[(__package__, STATIC_DIR)]), name='static')]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.batcher = batcher
    return app


def warm_up(batcher, classifier):
    """One forward pass before the first request, so it does not pay for building the graph."""
    started = time.perf_counter()
    batcher.submit(['안녕하세요']).result()
    logger.info('model ready (%s, %s, warm-up %.2f s)', classifier.dtype, classifier.ctx, time.perf_counter() - started)


# ---------------------------------------------------------------------------- running

def calibration_sample():
    """Sentences for int8 calibration when the user gives none: the embedded demo set's."""
    path = demo_data_path()
    with resources.as_file(path) as demo_file:
        return list(read_table(str(demo_file), 'text', 'label')['text'][:CALIBRATION_SENTENCES])


def run(classifier, host='127.0.0.1', port=8000, limits=None):
    """Serve until SIGTERM or Ctrl-C; SIGTERM lets requests in flight finish, then returns."""
    limits = limits or Limits()
    app = build_app(classifier, limits)
    listener = listen(host, port)
    bound_host, bound_port = listener.getsockname()[:2]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan='on',
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = uvicorn.Server(config)
    logger.info('serving %s on http://%s:%d/ (batching %s, max_batch %d, max_wait_ms %g)', classifier.dtype,
                bound_host, bound_port, 'on' if limits.batching else 'off', limits.max_batch, limits.max_wait_ms)
    with uvicorn_logs(), sigterm_ends_quietly():
        server.run(sockets=[listener])
    logger.info('server stopped after %d batches, %d sentences', app.state.batcher.batches,
                app.state.batcher.sentences)


def listen(host, port):
    """Our own listening socket, so that with port 0 we know (and log) the free port we got.

    Made with proto=IPPROTO_TCP because asyncio sets TCP_NODELAY only on such sockets; without
    it, Nagle holds back each response body until the client's delayed ACK: +40 ms a request
    on a kept-alive connection.
    """
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(socket.SOMAXCONN)
    except OSError as error:
        listener.close()
        raise OSError(f'cannot listen on {host}:{port}: {error.strerror or error}') from error
    return listener


@contextlib.contextmanager
def uvicorn_logs():
    """uvicorn's own lines (started, shutting down, errors) go where this package's logs go."""
    package_logger, uvicorn_logger = logging.getLogger(PACKAGE), logging.getLogger('uvicorn')
    handlers = [handler for handler in package_logger.handlers if handler not in uvicorn_logger.handlers]
    previous_level = uvicorn_logger.level
    uvicorn_logger.setLevel(package_logger.getEffectiveLevel())
    for handler in handlers:
        uvicorn_logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            uvicorn_logger.removeHandler(handler)
        uvicorn_logger.setLevel(previous_level)


@contextlib.contextmanager
def sigterm_ends_quietly():
    """uvicorn re-raises SIGTERM after its graceful shutdown; the default action would kill us
    with status 143. A stop asked for by SIGTERM is the normal end of a service: exit 0."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- OpenAPI

def openapi_schema(model_info):
    """OpenAPI 3.1 description of the API, with this model's labels in it."""
    labels = model_info['labels']
    probabilities = {'type': ['object', 'null'], 'description': 'softmax probability per label; null for a blank text',
                     'properties': {name: {'type': 'number'} for name in labels},
                     'additionalProperties': False}
    components = {
        'PredictRequest': {'type': 'object', 'required': ['texts'], 'additionalProperties': False, 'properties': {
            'texts': {'type': 'array', 'minItems': 1, 'maxItems': model_info['limits']['max_texts'],
                      'items': {'type': 'string'},
                      'description': f"sentences; each is cut to max_len={model_info['max_len']} tokens"}}},
        'Prediction': {'type': 'object', 'required': ['text', 'label', 'probabilities'], 'properties': {
            'text': {'type': 'string'},
            'label': {'enum': labels + [None], 'description': 'the most probable label; null for a blank text'},
            'probabilities': probabilities}},
        'PredictResponse': {'type': 'object', 'required': ['predictions'], 'properties': {
            'predictions': {'type': 'array', 'items': ref('Prediction'),
                            'description': 'one per text, in the order of the request'}}},
        'Health': {'type': 'object', 'required': ['status', 'batches', 'sentences'], 'properties': {
            'status': {'const': 'ok'}, 'batches': {'type': 'integer', 'description': 'forward batches so far'},
            'sentences': {'type': 'integer', 'description': 'sentences classified so far'}}},
        'Metadata': {'type': 'object', 'required': sorted(model_info), 'properties': {
            'labels': {'type': 'array', 'items': {'type': 'string'}}, 'max_len': {'type': 'integer'},
            'bert': {'type': 'object', 'description': 'BERT size (num_layers, units, ...)'},
            'dtype': {'type': 'string'}, 'library_version': {'type': 'string'},
            'tokenizer': {'type': 'object', 'description': 'tokenizer files by role, with their md5'},
            'limits': {'type': 'object', 'description': 'this server\'s batching and request limits'}}},
        'Error': {'type': 'object', 'required': ['error'], 'properties': {'error': {'type': 'string'}}},
    }
    errors = {str(status): json_body('Error', meaning) for status, meaning in ERROR_STATUSES.items()}
    paths = {
        '/predict': {'post': {'summary': 'Label sentences', 'operationId': 'predict',
                              'requestBody': {'required': True,
                                              'content': {'application/json': {'schema': ref('PredictRequest')}}},
                              'responses': {'200': json_body('PredictResponse', 'one prediction per text'), **errors}}},
        '/health': {'get': {'summary': 'Liveness, and how much work was done', 'operationId': 'health',
                            'responses': {'200': json_body('Health', 'the server is up')}}},
        '/metadata': {'get': {'summary': 'The model being served', 'operationId': 'metadata',
                              'responses': {'200': json_body('Metadata', 'labels, sizes, versions, md5s')}}},
        '/': {'get': {'summary': 'The web page (Korean, with English)', 'operationId': 'page',
                      'responses': {'200': {'description': 'HTML', 'content': {'text/html': {}}}}}},
        '/openapi.json': {'get': {'summary': 'This description', 'operationId': 'openapi',
                                  'responses': {'200': {'description': 'OpenAPI 3.1',
                                                        'content': {'application/json': {}}}}}},
    }
    return {'openapi': '3.1.0',
            'info': {'title': 'kobert-gluon serve', 'version': model_info['library_version'],
                     'description': 'KoBERT text classification. Errors are {"error": "..."}.'},
            'paths': paths, 'components': {'schemas': components}}


def ref(name):
    return {'$ref': f'#/components/schemas/{name}'}


def json_body(name, description):
    return {'description': description, 'content': {'application/json': {'schema': ref(name)}}}
