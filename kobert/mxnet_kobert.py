"""KoBERT's ``kobert.mxnet_kobert``: v0.2.x's loader and v0.1's ``get_kobert_model``."""
from kobert_gluon.mxnet_kobert import get_kobert_model
from kobert_gluon.models.bert import get_mxnet_kobert_model

__all__ = ('get_mxnet_kobert_model', 'get_kobert_model')
