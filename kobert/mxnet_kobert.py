"""KoBERT's ``kobert.mxnet_kobert``: v0.2.x's loader, v0.1's ``get_kobert_model``, and the names
SKT's module had (``download``, ``get_tokenizer``, its dictionaries)."""
from kobert_gluon.legacy import download, get_tokenizer, get_tokenizer_path  # noqa: F401  (SKT's module had them)
from kobert_gluon.legacy import mxnet_kobert, mxnet_kobert_models as kobert_models, tokenizer  # noqa: F401
from kobert_gluon.mxnet_kobert import get_kobert_model, get_mxnet_kobert_model

__all__ = ('get_mxnet_kobert_model', 'get_kobert_model')
