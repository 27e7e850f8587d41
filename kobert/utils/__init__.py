"""KoBERT's ``kobert.utils``: ``download`` and ``get_tokenizer`` (from kobert_gluon.utils)."""
from kobert_gluon.utils import download, get_tokenizer

__all__ = ('download', 'get_tokenizer')
