"""``kobert-gluon serve``: a JSON API and a Korean web page for a model directory.

FastAPI on uvicorn (the optional extra ``kobert_gluon[serve]``). Requests that arrive within
``max_wait_ms`` of each other are merged into one forward pass by
:class:`~kobert_gluon.serve.batcher.Batcher`, whose one thread is the only one that calls the
model.

Endpoints (described in ``GET /openapi.json``, browsable at ``GET /docs``, both generated from
the pydantic models below): ``POST /predict``, ``GET /health``, ``GET /metadata``, and the page
at ``/`` with its files under ``/static/``. ``POST /predict`` takes one of three bodies:

* ``{"texts": ["...", ...]}`` → ``{"predictions": [{"text", "label", "probabilities"}, ...]}``;
* ``{"text": "..."}`` → the same ``{"predictions": [...]}``, a list of one, so that one parser
  reads every answer of the native shapes;
* ``{"inputs": "..." | ["...", ...], "parameters": {"top_k": k}}``, the Hugging Face Inference
  API's text-classification body → HF's answer: one list of ``{"label", "score"}`` per text,
  highest score first, in a list (``[[...]]`` for a string as for a list of one; ``[]`` for a
  blank text, which gets no prediction).

Bad requests get ``{"error": "..."}``, one line naming the field: 400 (body not UTF-8 or not
JSON), 413 (body over ``--max_body_bytes`` or more texts than ``--max_texts``), 415 (not
``application/json``) or 422 (valid JSON of the wrong shape). The body is read and parsed here,
under those limits, before pydantic sees it; nothing from a request is ever used as a path or
unpickled.
"""
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import time
from importlib import resources
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from ..errors import MissingExtraError
from ..fileio import PACKAGE
from ..inference.classifier import CALIBRATION_SENTENCES
from ..text.data import demo_data_path, read_table
from .batcher import Batcher, Limits  # noqa: F401  (Limits: the CLI builds it from here)

try:
    import uvicorn
    from fastapi import APIRouter, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.routing import APIRoute
    from fastapi.staticfiles import StaticFiles
    from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, RootModel, StrictStr, Tag
    from pydantic_core import PydanticCustomError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
except ImportError as error:  # pragma: no cover - exercised by hiding fastapi/uvicorn in a test
    raise MissingExtraError('serve', f'{error.name or "fastapi/uvicorn"} (needed by kobert-gluon serve)') from None

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
SHAPES = '{"texts": [...]}, {"text": "..."} or {"inputs": ...}'
FIELD_TYPES = {'texts': 'an array of strings', 'text': 'a string', 'inputs': 'a string or an array of strings',
               'parameters': 'an object', 'options': 'an object', 'top_k': 'a positive integer'}
INPUTS_TAGS = ('string', 'array')  # how pydantic names the branches of "inputs" in an error's location


# ---------------------------------------------------------------------------- the models

class Error(BaseModel):
    """Every 4xx and 5xx answer: one line saying what was wrong, naming the field."""
    error: str = Field(examples=['texts[1] is a number, expected a string'])


class Health(BaseModel):
    status: Literal['ok']
    batches: int = Field(description='forward batches so far')
    sentences: int = Field(description='sentences classified so far')


class BaseWeights(BaseModel):
    """What the model's BERT body started from, as its training run recorded it."""
    kind: str = Field(description="'random' (untrained: a demo, its predictions mean little), 'pretrained', "
                                  "'kobert' or 'file'")
    name: Optional[str] = None


class LimitsInfo(BaseModel):
    max_batch: int
    max_wait_ms: float
    batching: bool
    max_texts: int
    max_body_bytes: int


class Metadata(BaseModel):
    labels: List[str]
    max_len: int
    bert: Dict[str, Any] = Field(description='BERT size (num_layers, units, ...)')
    dtype: str
    library_version: str
    tokenizer: Dict[str, Any] = Field(description='tokenizer files by role, with their md5')
    limits: LimitsInfo = Field(description="this server's batching and request limits")
    base_weights: Optional[BaseWeights] = Field(description='null when the model directory does not say')


class HFParameters(BaseModel):
    """The Inference API's text-classification parameters this server honours."""
    model_config = ConfigDict(extra='forbid')
    top_k: Optional[int] = Field(None, ge=1, description='only the k most probable labels of each text')
    function_to_apply: Optional[Literal['softmax']] = Field(
        None, description='scores are softmax probabilities; sigmoid and none are not available')


def unicode_text(value):
    try:
        value.encode('utf-8')
    except UnicodeEncodeError as error:  # JSON may escape half of a surrogate pair: "\ud800"
        raise PydanticCustomError('lone_surrogate', 'holds a lone surrogate {character} at character {at}',
                                  {'character': repr(value[error.start]), 'at': error.start}) from None
    return value


Text = Annotated[StrictStr, AfterValidator(unicode_text)]


def body_shape(payload):
    """Which request model a body is, by the field it has; None: none of them."""
    if isinstance(payload, dict):
        return next((key for key in ('texts', 'text', 'inputs') if key in payload), None)
    return next((key for key in ('texts', 'text', 'inputs') if hasattr(payload, key)), None)


def inputs_shape(value):
    return INPUTS_TAGS[0] if isinstance(value, str) else INPUTS_TAGS[1]


def api_models(labels, limits, max_len):
    """The request and answer models of one server: its labels and --max_texts are in them."""
    Label = Literal[tuple(labels)]  # noqa: N806
    texts_field = dict(min_length=1, max_length=limits.max_texts,
                       description=f'sentences, at most {limits.max_texts} (--max_texts); each is cut to '
                                   f'max_len={max_len} tokens')

    class TextsRequest(BaseModel):
        """Several sentences. Answer: ``{"predictions": [...]}``, one per text, in order."""
        model_config = ConfigDict(extra='forbid', json_schema_extra={
            'examples': [{'texts': ['배송이 빨라서 좋았어요', '다시는 안 삽니다']}]})
        texts: List[Text] = Field(**texts_field)

    class TextRequest(BaseModel):
        """One sentence. Answer: ``{"predictions": [...]}`` with one prediction, as for
        ``{"texts": [text]}``."""
        model_config = ConfigDict(extra='forbid',
                                  json_schema_extra={'examples': [{'text': '배송이 빨라서 좋았어요'}]})
        text: Text = Field(description=f'a sentence; it is cut to max_len={max_len} tokens')

    class HFRequest(BaseModel):
        """The Hugging Face Inference API's text-classification body. Answer: HF's, a list with
        one list of ``{"label", "score"}`` per text (``[[...]]`` for a string), highest first."""
        model_config = ConfigDict(extra='forbid', json_schema_extra={
            'examples': [{'inputs': '배송이 빨라서 좋았어요'},
                         {'inputs': ['좋아요', '별로예요'], 'parameters': {'top_k': 1}}]})
        inputs: Annotated[Union[Annotated[Text, Tag(INPUTS_TAGS[0])],
                                Annotated[List[Text], Field(**texts_field), Tag(INPUTS_TAGS[1])]],
                          Discriminator(inputs_shape)] = Field(description='a sentence, or several')
        parameters: Optional[HFParameters] = None
        options: Optional[Dict[str, Any]] = Field(None, description="accepted and ignored (HF's wait_for_model, "
                                                                    "use_cache)")

    class PredictRequest(RootModel):
        """One of three bodies, told apart by their field: ``texts``, ``text`` or ``inputs``."""
        root: Annotated[Union[Annotated[TextsRequest, Tag('texts')], Annotated[TextRequest, Tag('text')],
                              Annotated[HFRequest, Tag('inputs')]],
                        Discriminator(body_shape, custom_error_type='body_shape',
                                      custom_error_message=f'expected a JSON object {SHAPES}')]

    class Prediction(BaseModel):
        text: str
        label: Optional[Label] = Field(description='the most probable label; null for a blank text')
        probabilities: Optional[Dict[Label, float]] = Field(
            description='softmax probability per label; null for a blank text')

    class PredictResponse(BaseModel):
        """The answer to ``{"texts": [...]}`` and ``{"text": "..."}``."""
        predictions: List[Prediction] = Field(description='one per text, in the order of the request')

    class LabelScore(BaseModel):
        label: Label
        score: float

    HFResponse = Annotated[List[List[LabelScore]], Field(  # noqa: N806
        title='HFResponse', description='the answer to {"inputs": ...}: per text, its labels by score, highest '
                                        'first (top_k of them if asked); [] for a blank text')]
    return PredictRequest, TextsRequest, TextRequest, HFRequest, Union[PredictResponse, HFResponse]


ERROR_RESPONSES = {status: {'model': Error, 'description': meaning} for status, meaning in {
    400: 'body is not UTF-8 or not valid JSON',
    413: 'body over --max_body_bytes, or more texts than --max_texts',
    415: 'Content-Type is not application/json',
    422: f'valid JSON of the wrong shape: not one of {SHAPES}, an unknown field, an empty list, a text that is '
         'not a string or holds a lone surrogate'}.items()}


# ---------------------------------------------------------------------------- reading a body

class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def error_response(status, message, headers=None):
    return JSONResponse({'error': message}, status_code=status, headers=headers)


class ParsedRequest(Request):
    """A request whose body was already read and parsed under this server's limits."""

    def __init__(self, request, body, payload):
        super().__init__(request.scope, request.receive)
        self._checked = body, payload

    async def body(self):
        return self._checked[0]

    async def json(self):
        return self._checked[1]


class JsonBodyRoute(APIRoute):
    """Checks Content-Type, size, UTF-8 and JSON before FastAPI hands the body to pydantic, so
    those get their own statuses (415, 413, 400) and a body is never read past the limit."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request):
            check_content_type(request.headers.get('content-type', ''))
            body = await read_body(request, request.app.state.limits.max_body_bytes)
            return await handler(ParsedRequest(request, body, parse_json(body)))
        return checked


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


def parse_json(body):
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError as error:
        raise ApiError(400, f'body is not valid UTF-8 (byte {error.start}: {body[error.start:error.start + 1]!r})') from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ApiError(400, f'body is not valid JSON ({error})') from None


# ---------------------------------------------------------------------------- validation errors

def validation_error(errors):
    """``(status, one line)`` for pydantic's errors about a /predict body."""
    errors = [{**error, 'loc': tuple(error.get('loc', ()))} for error in errors]
    for error in errors:
        if error['loc'][:1] == ('body',):
            error['loc'] = error['loc'][1:]
        if error['type'] == 'body_shape':
            value = error.get('input')
            got = (f'an object with fields {sorted(value)}' if value else 'an empty object') \
                if isinstance(value, dict) else describe(value)
            return 422, f'expected a JSON object {SHAPES}, got {got}'
        if error['type'] == 'json_invalid':  # FastAPI's own parse; ours runs first, so only a safeguard
            return 400, f'body is not valid JSON ({error.get("ctx", {}).get("error", error["msg"])})'
    shape = errors[0]['loc'][0] if errors[0]['loc'] else None
    body = {'texts': 'a {"texts": [...]} body', 'text': 'a {"text": "..."} body',
            'inputs': 'a {"inputs": ...} body'}.get(shape, 'the body')
    for error in errors:  # the shape's tag is the first step of every location; "inputs" has one more
        error['path'] = [step for step in error['loc'][1:] if step not in INPUTS_TAGS]
    unknown = [error for error in errors if error['type'] == 'extra_forbidden']
    if unknown:
        where = unknown[0]['path'][:-1]
        names = sorted(str(error['path'][-1]) for error in unknown if error['path'][:-1] == where)
        return 422, f'unknown fields {names} in {field_name(where) if where else body}'
    for error in errors:
        if error['type'] == 'too_long' and len(error['path']) == 1:
            count, most = error['ctx']['actual_length'], error['ctx']['max_length']
            return 413, f'{count} texts; at most {most} per request (--max_texts)'
    error = errors[0]
    path, value = error['path'], error.get('input')
    where = field_name(path)
    if error['type'] == 'too_short':
        return 422, f'{where} is empty; send at least one string'
    if error['type'] == 'lone_surrogate':
        return 422, f'{where} {error["msg"]}; it is not Unicode text'
    if error['type'].endswith('_type'):
        expected = 'a string' if isinstance(path[-1], int) else FIELD_TYPES.get(path[-1], error['msg'].lower())
        hint = '; send several as {"texts": [...]}' if path == ['text'] and isinstance(value, list) else ''
        return 422, f'{where} is {describe(value)}, expected {expected}{hint}'
    return 422, f'{where}: {error["msg"]}'


def field_name(path):
    """``"texts"``, ``texts[1]``, ``"parameters.top_k"``: where in the body a problem is."""
    if not path:
        return 'the body'
    name = str(path[0]) + ''.join(f'[{step}]' if isinstance(step, int) else f'.{step}' for step in path[1:])
    return name if any(isinstance(step, int) for step in path) else f'"{name}"'


def describe(value):
    return JSON_TYPES.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- answers

def hf_answer(records, top_k=None):
    """Hugging Face's text-classification answer: per text, ``[{"label", "score"}, ...]`` by score."""
    answer = []
    for record in records:
        scores = sorted(((score, label) for label, score in (record['probabilities'] or {}).items()),
                        key=lambda pair: -pair[0])
        answer.append([{'label': label, 'score': score} for score, label in scores[:top_k]])
    return answer


def base_weights(classifier):
    """``{"kind", "name"}`` of what the BERT body started from, or None when unrecorded.

    Read from the model's ``training`` record (config.json), which older model directories
    lack or hold in other shapes: anything unexpected is None, never an error."""
    training = getattr(classifier, 'training', None) or {}
    found = training.get('base_weights') if isinstance(training, dict) else None
    if isinstance(found, str):
        found = {'kind': found}
    if not isinstance(found, dict) or not isinstance(found.get('kind'), str):
        return None
    name = found.get('name')
    if not isinstance(name, str):
        name = None
    elif found['kind'] == 'file':  # the training machine's path is nobody's business
        name = os.path.basename(name.rstrip('/\\'))
    return {'kind': found['kind'], 'name': name}


def metadata(classifier, limits):
    config = classifier.config_dict()
    return {'labels': classifier.label_map.names, 'max_len': config['max_len'], 'bert': config['bert'],
            'dtype': classifier.dtype, 'library_version': config['library_version'],
            'tokenizer': config['tokenizer'], 'limits': dataclasses.asdict(limits),
            'base_weights': base_weights(classifier)}


# ---------------------------------------------------------------------------- the application

def build_app(classifier, limits):
    """The FastAPI application; the model thread runs between its startup and shutdown."""
    batcher = Batcher(classifier, limits)
    model_info = Metadata(**metadata(classifier, limits)).model_dump()  # md5s once, not per request; checked
    PredictRequest, TextsRequest, TextRequest, HFRequest, PredictAnswer = api_models(  # noqa: N806
        model_info['labels'], limits, model_info['max_len'])
    page_html = resources.files(__package__).joinpath(STATIC_DIR, 'index.html').read_bytes()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        warm_up(batcher, classifier)
        yield
        batcher.stop()

    async def api_error(request, error):
        logger.info('%s %s: %d %s', request.method, request.url.path, error.status, error)
        return error_response(error.status, str(error))

    async def invalid_body(request, error):
        status, message = validation_error(error.errors())
        logger.info('%s %s: %d %s', request.method, request.url.path, status, message)
        return error_response(status, message)

    async def http_error(request, error):
        return error_response(error.status_code, error.detail, getattr(error, 'headers', None))

    async def server_error(request, error):
        return error_response(500, f'internal error ({type(error).__name__}); see the server log')

    app = FastAPI(
        title='kobert-gluon serve', version=model_info['library_version'], lifespan=lifespan,
        description='KoBERT text classification with dynamic batching. `POST /predict` takes '
                    f'{SHAPES} (Hugging Face Inference API); errors are `{{"error": "..."}}`.',
        redoc_url=None,  # /docs is enough, and each loads its script from a CDN
        exception_handlers={ApiError: api_error, RequestValidationError: invalid_body, HTTPException: http_error,
                            Exception: server_error})
    app.state.limits, app.state.batcher = limits, batcher

    @app.get('/', response_class=HTMLResponse, summary='The web page (Korean, with English)', operation_id='page',
             responses={200: {'content': {'text/html': {}}, 'description': 'HTML'}})
    async def page():
        return Response(page_html, media_type='text/html; charset=utf-8', headers=PAGE_HEADERS)

    api = APIRouter(route_class=JsonBodyRoute)

    @api.post('/predict', response_model=PredictAnswer, summary='Label sentences', operation_id='predict',
              responses={200: {'description': 'one prediction per text, in order'}, **ERROR_RESPONSES},
              description='`{"texts": [...]}` and `{"text": "..."}` are answered `{"predictions": [...]}` '
                          '(a list of one for `text`); `{"inputs": "..." | [...]}` as the Hugging Face Inference API '
                          'answers text classification: `[[{"label", "score"}, ...], ...]`, one list per text, '
                          'highest score first, `[[...]]` for a string, `[]` for a blank text.')
    async def predict(payload: PredictRequest):
        body = payload.root
        if isinstance(body, HFRequest):
            texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        else:
            texts = body.texts if isinstance(body, TextsRequest) else [body.text]
        records = await asyncio.wrap_future(batcher.submit(texts))
        if isinstance(body, HFRequest):
            return JSONResponse(hf_answer(records, body.parameters and body.parameters.top_k))
        return JSONResponse({'predictions': records})  # already plain JSON: no second pass through pydantic

    app.include_router(api)

    @app.get('/health', response_model=Health, summary='Liveness, and how much work was done', operation_id='health')
    async def health():
        return {'status': 'ok', 'batches': batcher.batches, 'sentences': batcher.sentences}

    @app.get('/metadata', response_model=Metadata, summary='The model being served', operation_id='metadata',
             description='labels, sizes, versions, md5s, limits; `base_weights.kind` is "random" for a demo '
                         'trained from untrained BERT weights')
    async def get_metadata():
        return JSONResponse(model_info)

    app.mount('/static', StaticFiles(packages=[(__package__, STATIC_DIR)]), name='static')
    return app


def warm_up(batcher, classifier):
    """One forward pass before the first request, so it does not pay for building the graph."""
    started = time.perf_counter()
    batcher.submit(['안녕하세요']).result()
    logger.info('model ready (%s, %s, warm-up %.2f s)', classifier.dtype, classifier.ctx, time.perf_counter() - started)


# ---------------------------------------------------------------------------- running

def calibration_sample():
    """Sentences for int8 calibration when the user gives none: the embedded demo set's."""
    return list(read_table(demo_data_path(), 'text', 'label')['text'][:CALIBRATION_SENTENCES])


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
