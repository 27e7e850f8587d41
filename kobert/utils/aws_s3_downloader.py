"""KoBERT v0.2.x's ``kobert.utils.aws_s3_downloader.AwsS3Downloader``, without boto3.

SKT's class fetched public objects of the ``skt-lsl-nlp-model`` bucket unsigned. This one
reads the same ``s3://bucket/key`` URLs over HTTPS (``https://bucket.s3.amazonaws.com/key``;
``http(s)://`` URLs as they are) with kobert_gluon's timeouts, writes a ``.part`` file renamed
into place only when complete, and raises one :class:`AssetError` saying why (offline, HTTP
404, ...) where SKT's raised ``Exception('downloading file is failed. URL')``.
"""
import contextlib
import os
import tempfile

from kobert_gluon.assets.download import _describe, _stream
from kobert_gluon.errors import AssetError
from kobert_gluon.legacy import _http_url

__all__ = ('AwsS3Downloader',)


class AwsS3Downloader(object):
    def __init__(self, aws_access_key_id=None, aws_secret_access_key=None):
        # Public objects need no credentials; none are read or sent.
        self.aws_access_key_id = aws_access_key_id
        self.aws_secret_access_key = aws_secret_access_key

    def download(self, url: str, local_dir: str) -> str:
        """Fetch ``url`` into ``local_dir`` (created); returns the file's path."""
        http_url = _http_url(url)
        filename = os.path.basename(http_url.split('?', 1)[0])
        os.makedirs(local_dir, exist_ok=True)
        file_path = os.path.join(local_dir, filename)
        partial = tempfile.NamedTemporaryFile(dir=local_dir, delete=False, prefix=f'.{filename}.', suffix='.part')
        try:
            with partial:
                _stream(http_url, partial, filename)
            os.chmod(partial.name, 0o644)
            os.replace(partial.name, file_path)
        except Exception as error:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial.name)
            raise AssetError(f'downloading file is failed. {url} ({http_url}: {_describe(error)}); without network, '
                             f'put {filename} in {os.path.abspath(local_dir)} yourself') from error
        return file_path
