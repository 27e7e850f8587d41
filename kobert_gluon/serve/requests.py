"""Reading a request before pydantic sees it: content type, body size, UTF-8 and JSON, each a
clear 4xx ``{"error": ...}``; and pydantic's validation errors turned into one line naming the field."""
import json

from ..errors import MissingExtraError
from ..extras import require_extra
from .schemas import FIELD_TYPES, INPUTS_TAGS, SHAPES

require_extra('serve', 'by kobert-gluon serve')  # every package of the extra, not the first missing one
try:
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute
    from starlette.requests import Request
except ImportError as error:  # pragma: no cover - exercised by hiding fastapi/uvicorn in a test
    raise MissingExtraError('serve', f'{error.name or "fastapi"} (needed by kobert-gluon serve)') from None


JSON_TYPES = {dict: 'an object', list: 'an array', str: 'a string', int: 'a number', float: 'a number',
              bool: 'a boolean', type(None): 'null'}


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
