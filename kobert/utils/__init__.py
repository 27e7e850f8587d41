"""KoBERT's ``kobert.utils``: ``download`` and ``get_tokenizer`` (from kobert_gluon.legacy)."""
from kobert_gluon.legacy import download, get_tokenizer

__all__ = ('download', 'get_tokenizer')
