"""KoBERT's old API (``kobert.utils``): ``download`` and ``get_tokenizer``, plus the old names
``get_tokenizer_path``. Imports nothing heavy: finding a file never loads mxnet.

Also the check that the ``kobert`` alias installed with kobert_gluon is not mixed with SKT's
own ``kobert`` package (see :func:`kobert_alias_problems`).
"""
import importlib.util
import os
import posixpath
import urllib.parse
import warnings

from . import assets
from .errors import ConfigError

FORMATS = ('spiece', 'v0.1')
ALIAS_MARKER = '__kobert_gluon_alias__'
SKT_DISTRIBUTION = 'kobert'


class KobertAliasWarning(UserWarning):
    """SKT's ``kobert`` package and kobert_gluon's ``kobert`` alias are both installed."""


def get_tokenizer_path(kobert_dir=None, cache_dir=None, format='spiece', download=True):
    """Path of the SentencePiece model file of the requested KoBERT format."""
    name = {'spiece': 'spiece', 'v0.1': 'sp_model_v01'}[_format_name(format)]
    return assets.resolve(name, kobert_dir=kobert_dir, cache_dir=cache_dir, download=download)


def get_tokenizer(cachedir=None):
    """KoBERT's ``get_tokenizer``: the path of the ``.spiece`` tokenizer file.

    ``cachedir`` (KoBERT v0.2.x defaulted to ``".cache"``) is searched first, and remembered:
    a later call without it searches it too. The full lookup order is in ``kobert_gluon.assets``.
    """
    return assets.resolve('spiece', cache_dir=assets.remember_cache_dir(cachedir))


def download(url, chksum=None, cachedir=None):
    """KoBERT v0.2.x's ``download``: ``(path, is_cached)`` of the file named by the end of ``url``.

    The file is looked up like every KoBERT file (``cachedir`` first, remembered as in
    :func:`get_tokenizer`); ``is_cached`` is False when it had to be downloaded. ``url`` is
    tried first (``s3://bucket/key`` as ``https://bucket.s3.amazonaws.com/key``), then, for a
    file kobert_gluon knows, its mirrors. ``chksum`` is an md5 or its first 10 hex digits;
    kobert_gluon knows it for its own files.
    """
    http_url = _http_url(url)
    filename = posixpath.basename(urllib.parse.urlparse(http_url).path)
    if not filename:
        raise ConfigError(f'download(url={url!r}): the URL does not end in a file name')
    known = assets.asset_for_filename(filename)
    if chksum is None and known is None:
        raise ConfigError(f'download({url!r}): chksum is needed for {filename}, a file '
                          f'kobert_gluon does not know')
    md5 = known.md5 if chksum is None else str(chksum)[:32]
    try:
        asset = assets.Asset(filename, md5, urls=known.urls if known else (), hint=known.hint if known else '')
    except ValueError as error:
        raise ConfigError(f'download(chksum={chksum!r}): {error}') from None
    return assets.fetch(asset, cache_dir=assets.remember_cache_dir(cachedir),
                        base_url=http_url[:-len(filename)])


def _format_name(format):
    if format not in FORMATS:
        raise ConfigError(f'format={format!r}: expected one of {FORMATS}')
    return format


def _http_url(url):
    if url.startswith('s3://'):
        bucket, _, key = url[len('s3://'):].partition('/')
        return f'https://{bucket}.s3.amazonaws.com/{key}'
    if not url.startswith(('http://', 'https://')):
        raise ConfigError(f'download(url={url!r}): expected an http(s):// or s3:// URL')
    return url


# ---------------------------------------------------------------------------- the kobert alias

def kobert_alias_problems(check_distributions=True):
    """Why ``import kobert`` is not (only) kobert_gluon's alias; an empty list when it is.

    Both packages install a top-level ``kobert``: pip lets one overwrite the other's files, or
    puts one in front of the other on ``sys.path``. Either way the result is a mix.
    ``check_distributions=False`` skips the look at installed distributions (0.2 s), leaving
    the check that ``import kobert`` finds the alias.
    """
    problems = []
    try:
        spec = importlib.util.find_spec('kobert')
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if origin and os.path.isfile(origin) and not _is_alias(origin):
        problems.append(f'`import kobert` loads {origin}, which is not kobert_gluon\'s alias '
                        f'(SKT\'s kobert package or a KoBERT checkout is installed over it or in front of it).')
    skt = _skt_distribution() if check_distributions else None
    if skt is not None:
        skt_init = os.path.abspath(str(skt.locate_file('kobert/__init__.py')))
        where = ('into the same folder as kobert_gluon\'s alias, so their files are mixed'
                 if origin and os.path.abspath(origin) == skt_init else f'at {os.path.dirname(skt_init)}')
        problems.append(f'SKT\'s kobert {skt.version} is installed {where}.')
    if problems:
        problems.append('Keep one: `pip uninstall -y kobert && pip install --force-reinstall kobert_gluon` '
                        'for kobert_gluon\'s alias, or use SKT\'s package without kobert_gluon.')
    return problems


def warn_if_kobert_alias_mixed(check_distributions=True, stacklevel=3):
    problems = kobert_alias_problems(check_distributions)
    if problems:
        warnings.warn(' '.join(problems), KobertAliasWarning, stacklevel=stacklevel)
    return problems


def _skt_distribution():
    import importlib.metadata
    try:
        return importlib.metadata.distribution(SKT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_alias(path):
    try:
        with open(path, encoding='utf-8') as source:
            return ALIAS_MARKER in source.read()
    except (OSError, UnicodeDecodeError):
        return False


__all__ = ['download', 'get_tokenizer', 'get_tokenizer_path', 'kobert_alias_problems', 'KobertAliasWarning']
