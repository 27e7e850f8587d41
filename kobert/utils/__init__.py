"""KoBERT's ``kobert.utils`` (v0.2.x: a package; v0.1.x: a module with ``get_onnx`` and its
dictionaries): ``download``, ``get_tokenizer``/``get_tokenizer_path``, from kobert_gluon.legacy."""
from kobert_gluon.legacy import download, get_onnx, get_tokenizer, onnx_kobert, tokenizer  # noqa: F401
from kobert_gluon.legacy import utils_kobert_models as kobert_models  # noqa: F401  (v0.1)

get_tokenizer_path = get_tokenizer  # KoBERT HEAD ("0.2.4") renamed get_tokenizer; same signature (cachedir)

__all__ = ('download', 'get_tokenizer', 'get_tokenizer_path', 'get_onnx')
