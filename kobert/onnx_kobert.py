"""KoBERT's ``kobert.onnx_kobert``: not served by kobert_gluon (MXNet only)."""
from kobert_gluon.errors import ConversionError

from .pytorch_kobert import CONVERSION_HINT


def get_onnx_kobert_model(cachedir='.cache'):
    raise ConversionError(f'get_onnx_kobert_model is not available: {CONVERSION_HINT} transformers '
                          'exports to ONNX from there.')
