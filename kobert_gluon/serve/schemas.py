"""The API's pydantic models: ``/openapi.json`` and ``/docs`` are generated from them, and they
check every request body after :mod:`.requests` has read and parsed it under the limits."""
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from ..errors import MissingExtraError
from ..extras import require_extra

require_extra('serve', 'by kobert-gluon serve')  # every package of the extra, not the first missing one
try:
    from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, RootModel, StrictStr, Tag,
                          create_model)
    from pydantic_core import PydanticCustomError
except ImportError as error:  # pragma: no cover - exercised by hiding fastapi/uvicorn in a test
    raise MissingExtraError('serve', f'{error.name or "pydantic"} (needed by kobert-gluon serve)') from None


SHAPES = '{"texts": [...]}, {"text": "..."} or {"inputs": ...}'


FIELD_TYPES = {'texts': 'an array of strings', 'text': 'a string', 'inputs': 'a string or an array of strings',
               'text_pairs': 'an array of strings', 'text_pair': 'a string', 'threshold': 'a number',
               'parameters': 'an object', 'options': 'an object', 'top_k': 'a positive integer'}


# how pydantic names the branches of "inputs" in an error's location: a string, an array of strings,
# one {"text", "text_pair"} object or an array of them
INPUTS_TAGS = ('string', 'array', 'object', 'objects')


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
    task: str = Field(description="'classification', 'regression', 'multi_label' or 'token_classification'")
    task_settings: Dict[str, Any] = Field(description='e.g. the threshold of a multi-label model')
    pair: bool = Field(description='whether the model reads sentence pairs (text + text_pair)')
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
    function_to_apply: Optional[Literal['softmax', 'sigmoid', 'none']] = Field(
        None, description="the model's own only: 'softmax' (classification), 'sigmoid' (multi-label), 'none' "
                          '(regression)')


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
    if isinstance(value, str):
        return INPUTS_TAGS[0]
    if isinstance(value, dict):
        return INPUTS_TAGS[2]
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return INPUTS_TAGS[3]
    return INPUTS_TAGS[1]


class HFPair(BaseModel):
    """One sentence pair, as the Inference API (and ``pipeline()``) take them."""
    model_config = ConfigDict(extra='forbid')
    text: Text
    text_pair: Optional[Text] = None


def api_models(labels, limits, max_len, task, pair=False):
    """The request and answer models of one server: its labels, task, pairs and --max_texts are in them."""
    Label = Literal[tuple(labels)]  # noqa: N806
    texts_field = dict(min_length=1, max_length=limits.max_texts,
                       description=f'sentences, at most {limits.max_texts} (--max_texts); each is cut to '
                                   f'max_len={max_len} tokens')
    pairs_help = ('the second sentence of each pair, as many as texts (required: this model reads sentence pairs)'
                  if pair else 'sentence-pair models only; this model reads single sentences')
    threshold_field = Field(None, gt=0, lt=1, description='multi-label models: the probability above which a label is '
                                                    "predicted, for this request (default: the model's)")
    example = '배송이 빨라서 좋았어요'

    class TextsRequest(BaseModel):
        """Several sentences (or pairs). Answer: ``{"predictions": [...]}``, one per text, in order."""
        model_config = ConfigDict(extra='forbid', json_schema_extra={'examples': [
            {'texts': ['배송이 빨라서 좋았어요', '다시는 안 삽니다'],
             **({'text_pairs': ['빨리 왔어요', '또 살게요']} if pair else {})}]})
        texts: List[Text] = Field(**texts_field)
        text_pairs: Optional[List[Text]] = Field(None, description=pairs_help)
        threshold: Optional[float] = threshold_field

    class TextRequest(BaseModel):
        """One sentence (or pair). Answer: ``{"predictions": [...]}`` with one prediction, as for
        ``{"texts": [text]}``."""
        model_config = ConfigDict(extra='forbid', json_schema_extra={
            'examples': [{'text': example, **({'text_pair': '빨리 왔어요'} if pair else {})}]})
        text: Text = Field(description=f'a sentence; it is cut to max_len={max_len} tokens')
        text_pair: Optional[Text] = Field(None, description=pairs_help)
        threshold: Optional[float] = threshold_field

    class HFRequest(BaseModel):
        """The Hugging Face Inference API's text-classification body. Answer: HF's, a list with
        one list of ``{"label", "score"}`` per text (``[[...]]`` for a string), highest first."""
        model_config = ConfigDict(extra='forbid', json_schema_extra={'examples': [
            {'inputs': {'text': example, 'text_pair': '빨리 왔어요'}} if pair else {'inputs': example},
            {'inputs': ['좋아요', '별로예요'], 'parameters': {'top_k': 1}}]})
        inputs: Annotated[Union[Annotated[Text, Tag(INPUTS_TAGS[0])],
                                Annotated[List[Text], Field(**texts_field), Tag(INPUTS_TAGS[1])],
                                Annotated[HFPair, Tag(INPUTS_TAGS[2])],
                                Annotated[List[HFPair], Field(**texts_field), Tag(INPUTS_TAGS[3])]],
                          Discriminator(inputs_shape)] = Field(
            description='a sentence, several, or {"text", "text_pair"} pairs (one or a list) for a pair model')
        parameters: Optional[HFParameters] = None
        options: Optional[Dict[str, Any]] = Field(None, description="accepted and ignored (HF's wait_for_model, "
                                                                    "use_cache)")

    class PredictRequest(RootModel):
        """One of three bodies, told apart by their field: ``texts``, ``text`` or ``inputs``."""
        root: Annotated[Union[Annotated[TextsRequest, Tag('texts')], Annotated[TextRequest, Tag('text')],
                              Annotated[HFRequest, Tag('inputs')]],
                        Discriminator(body_shape, custom_error_type='body_shape',
                                      custom_error_message=f'expected a JSON object {SHAPES}')]

    fields = {name: (annotation, Field(description=help_text))
              for name, (annotation, help_text) in task.prediction_schema(Label).items()}
    Prediction = create_model(  # noqa: N806
        'Prediction', text=(str, ...), **({'text_pair': (str, ...)} if pair else {}), **fields)

    class PredictResponse(BaseModel):
        """The answer to ``{"texts": [...]}`` and ``{"text": "..."}``."""
        predictions: List[Prediction] = Field(description='one per text, in the order of the request')

    class LabelScore(BaseModel):
        label: Label
        score: float

    answer_item = task.hf_answer_type(Label)
    HFResponse = Annotated[List[List[answer_item or LabelScore]], Field(  # noqa: N806
        title='HFResponse', description='the answer to {"inputs": ...}: per text, its labels by score, highest '
                                        'first (top_k of them if asked); [] for a blank text' if answer_item is None
        else 'the answer to {"inputs": ...}: per text, its entities in the token-classification pipeline\'s shape')]
    return PredictRequest, TextsRequest, TextRequest, HFRequest, Union[PredictResponse, HFResponse]


ERROR_RESPONSES = {status: {'model': Error, 'description': meaning} for status, meaning in {
    400: 'body is not UTF-8 or not valid JSON',
    413: 'body over --max_body_bytes, or more texts than --max_texts',
    415: 'Content-Type is not application/json',
    422: f'valid JSON of the wrong shape: not one of {SHAPES}, an unknown field, an empty list, a text that is '
         'not a string or holds a lone surrogate'}.items()}
