"""KoBERT's old module path: ``from kobert.mxnet_kobert import get_mxnet_kobert_model``."""
from .model import get_mxnet_kobert_model  # noqa: F401
