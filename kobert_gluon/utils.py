"""KoBERT's old module path: ``from kobert.utils import get_tokenizer``."""
from .tokenizer import get_tokenizer  # noqa: F401
