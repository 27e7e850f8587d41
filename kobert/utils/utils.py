"""KoBERT v0.2.x's ``kobert.utils.utils`` module path."""
from kobert_gluon.legacy import download, get_tokenizer

__all__ = ('download', 'get_tokenizer')
