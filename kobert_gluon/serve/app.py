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
import logging
import os
import signal
import socket
import time
from importlib import resources

from ..errors import MissingExtraError
from ..extras import require_extra
from ..fileio import PACKAGE

from .batcher import Batcher, Limits  # noqa: F401  (Limits: the CLI builds it from here)

require_extra('serve', 'by kobert-gluon serve')  # every package of the extra, not the first missing one
try:
    import uvicorn
    from fastapi import APIRouter, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.exceptions import HTTPException
except ImportError as error:  # pragma: no cover - exercised by hiding fastapi/uvicorn in a test
    raise MissingExtraError('serve', f'{error.name or "fastapi/uvicorn"} (needed by kobert-gluon serve)') from None
try:  # Swagger UI 5's script and stylesheet, so /docs works offline; FastAPI's own /docs loads them from a CDN
    import fastapi_offline
    SWAGGER_UI_DIR = os.path.join(os.path.dirname(fastapi_offline.__file__), 'static')
except ImportError:  # pragma: no cover - the serve extra installs it
    SWAGGER_UI_DIR = None
from .requests import ApiError, JsonBodyRoute, error_response, validation_error  # noqa: E402
from .schemas import ERROR_RESPONSES, SHAPES, Health, Metadata, api_models  # noqa: E402

logger = logging.getLogger(__name__)

STATIC_DIR = 'static'
GRACEFUL_SHUTDOWN_S = 60  # after SIGTERM, requests in flight get this long to finish
PAGE_HEADERS = {
    # The page loads nothing from elsewhere: no CDN, no inline script.
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
}


# ---------------------------------------------------------------------------- answers

def hf_answer(task, records, label_names, top_k=None):
    """Hugging Face's answer: per text, the task's ``[{"label", "score"}, ...]`` by score."""
    return [task.hf_answer(record, label_names, top_k) for record in records]


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
    return {'task': config['task'], 'task_settings': config['task_settings'], 'pair': config['pair'],
            'labels': classifier.label_map.names, 'max_len': config['max_len'], 'bert': config['bert'],
            'dtype': classifier.dtype, 'library_version': config['library_version'],
            'tokenizer': config['tokenizer'], 'limits': dataclasses.asdict(limits),
            'base_weights': base_weights(classifier)}


# ---------------------------------------------------------------------------- the application

def build_app(classifier, limits):
    """The FastAPI application; the model thread runs between its startup and shutdown."""
    batcher = Batcher(classifier, limits)
    model_info = Metadata(**metadata(classifier, limits)).model_dump()  # md5s once, not per request; checked
    PredictRequest, _, _, HFRequest, PredictAnswer = api_models(  # noqa: N806
        model_info['labels'], limits, model_info['max_len'], classifier.task, classifier.pair)
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
        description=f'KoBERT {classifier.task.name} ({classifier.task.description})'
                    + (' of sentence pairs' if classifier.pair else '') + ' with dynamic batching. `POST /predict` '
                    f'takes {SHAPES} (Hugging Face Inference API); errors are `{{"error": "..."}}`.',
        redoc_url=None, docs_url=None if SWAGGER_UI_DIR else '/docs',  # /docs is enough (add_docs)
        exception_handlers={ApiError: api_error, RequestValidationError: invalid_body, HTTPException: http_error,
                            Exception: server_error})
    app.state.limits, app.state.batcher = limits, batcher

    @app.get('/', response_class=HTMLResponse, summary='The web page (Korean, with English)', operation_id='page',
             responses={200: {'content': {'text/html': {}}, 'description': 'HTML'}})
    async def page():
        return Response(page_html, media_type='text/html; charset=utf-8', headers=PAGE_HEADERS)

    app.include_router(predict_route(classifier, batcher, PredictRequest, HFRequest, PredictAnswer))

    @app.get('/health', response_model=Health, summary='Liveness, and how much work was done', operation_id='health')
    async def health():
        return {'status': 'ok', 'batches': batcher.batches, 'sentences': batcher.sentences}

    @app.get('/metadata', response_model=Metadata, summary='The model being served', operation_id='metadata',
             description='labels, sizes, versions, md5s, limits; `base_weights.kind` is "random" for a demo '
                         'trained from untrained BERT weights')
    async def get_metadata():
        return JSONResponse(model_info)

    app.mount('/static', StaticFiles(packages=[(__package__, STATIC_DIR)]), name='static')
    add_docs(app)
    return app


PREDICT_DESCRIPTION = (
    '`{"texts": [...]}` and `{"text": "..."}` are answered `{"predictions": [...]}` (a list of one for `text`); a '
    'pair model takes `text_pairs` / `text_pair` beside them. `{"inputs": "..." | [...] | {"text", "text_pair"} | '
    '[{...}]}` is answered as the Hugging Face Inference API answers text classification: `[[{"label", "score"}, '
    '...], ...]`, one list per text, highest score first, `[[...]]` for a string, `[]` for a blank text. Each '
    "prediction holds the task's fields: `label` and `probabilities` (classification), `score` (regression), "
    "`labels` and `probabilities` (multi-label; `threshold` in the body overrides the model's).")


def predict_route(classifier, batcher, PredictRequest, HFRequest, PredictAnswer):  # noqa: N803 (pydantic models)
    """``POST /predict``: a body's inputs through the batcher, answered in the body's shape."""
    api = APIRouter(route_class=JsonBodyRoute)

    @api.post('/predict', response_model=PredictAnswer, summary='Label sentences', operation_id='predict',
              responses={200: {'description': 'one prediction per text, in order'}, **ERROR_RESPONSES},
              description=PREDICT_DESCRIPTION)
    async def predict(payload: PredictRequest):
        body = payload.root
        items = request_inputs(body, classifier.pair)
        settings = request_settings(body, classifier)
        records = await asyncio.wrap_future(batcher.submit(items))
        names, task = classifier.label_map.names, classifier.task
        if settings is not None:
            records = [task.adjusted(record, names, settings) for record in records]
        if isinstance(body, HFRequest):
            return JSONResponse(hf_answer(task, records, names, body.parameters and body.parameters.top_k))
        return JSONResponse({'predictions': records})  # already plain JSON: no second pass through pydantic
    return api


def request_inputs(body, pair):
    """The texts of a /predict body as the model reads them: strings, or (text, text_pair) pairs
    for a pair model; a 422 ApiError when the body's shape does not fit the model."""
    if hasattr(body, 'inputs'):
        inputs = body.inputs
        items = [inputs] if isinstance(inputs, str) or not isinstance(inputs, list) else inputs
        texts = [item.text if hasattr(item, 'text') else item for item in items]
        pairs = [getattr(item, 'text_pair', None) for item in items]
        given, where = any(pair is not None for pair in pairs), '"inputs"'
    elif hasattr(body, 'texts'):
        texts, pairs, given, where = body.texts, body.text_pairs, body.text_pairs is not None, '"text_pairs"'
        if given and len(pairs) != len(texts):
            raise ApiError(422, f'{len(texts)} texts but {len(pairs)} text_pairs; send one text_pair per text')
    else:
        texts, pairs, given, where = [body.text], [body.text_pair], body.text_pair is not None, '"text_pair"'
    if given and not pair:
        raise ApiError(422, f'{where}: this model reads single sentences, not pairs; send texts only')
    if pair and (not given or any(item is None for item in pairs)):
        raise ApiError(422, 'this model reads sentence pairs: send {"text": ..., "text_pair": ...}, '
                            '{"texts": [...], "text_pairs": [...]} or {"inputs": {"text": ..., "text_pair": ...}}')
    return list(zip(texts, pairs)) if pair else list(texts)


def request_settings(body, classifier):
    """A request's own task settings (a multi-label threshold), or None; 422 where the model has none."""
    task = classifier.task
    function = getattr(getattr(body, 'parameters', None), 'function_to_apply', None)
    if function is not None and function != task.hf_function:
        raise ApiError(422, f'"parameters.function_to_apply" is {function!r}; this {task.name} model\'s scores '
                            f'are {task.hf_function!r}')
    threshold = getattr(body, 'threshold', None)
    if threshold is None:
        return None
    if 'threshold' not in task.default_settings:
        raise ApiError(422, f'"threshold": only multi-label models have one; this is a {task.name} model')
    return {**classifier.task_settings, 'threshold': threshold}


DOCS_ASSETS = '/docs-assets'


def add_docs(app):
    """/docs: Swagger UI served from the fastapi-offline package's copy, nothing from elsewhere
    (without it FastAPI's /docs stands, which loads Swagger UI from a CDN). Swagger UI 5: the
    schema is OpenAPI 3.1, which version 4 cannot show."""
    if not SWAGGER_UI_DIR:
        logger.info('fastapi-offline is not installed: /docs loads Swagger UI from a CDN')
        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI_DIR), name='docs-assets')

    @app.get('/docs', include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f'{app.title} - API',
                                   swagger_js_url=f'{DOCS_ASSETS}/swagger-ui-bundle.js',
                                   swagger_css_url=f'{DOCS_ASSETS}/swagger-ui.css',
                                   swagger_favicon_url=f'{DOCS_ASSETS}/favicon.png')


def warm_up(batcher, classifier):
    """One forward pass before the first request, so it does not pay for building the graph."""
    started = time.perf_counter()
    batcher.submit([('안녕하세요', '반갑습니다')] if classifier.pair else ['안녕하세요']).result()
    logger.info('model ready (%s, %s, warm-up %.2f s)', classifier.dtype, classifier.ctx, time.perf_counter() - started)


# ---------------------------------------------------------------------------- running


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
