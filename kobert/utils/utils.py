"""KoBERT v0.2.x's ``kobert.utils.utils`` module path."""
from kobert_gluon.legacy import download, get_tokenizer  # noqa: F401

from . import get_tokenizer_path  # noqa: F401
from .aws_s3_downloader import AwsS3Downloader  # noqa: F401  (SKT's module imported it)

__all__ = ('download', 'get_tokenizer', 'get_tokenizer_path')
