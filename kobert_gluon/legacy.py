"""KoBERT's old API (``kobert.utils``): ``download`` and ``get_tokenizer``, plus the old names
``get_tokenizer_path``. Imports nothing heavy: finding a file never loads mxnet.

Also the check that the ``kobert`` alias installed with kobert_gluon is not mixed with SKT's
own ``kobert`` package (see :func:`kobert_alias_problems`).
"""
import importlib.util
import inspect
import logging
import os
import posixpath
import re
import urllib.parse
import warnings

from . import arguments as _arg
from . import assets
from .assets import AssetNotFoundError, ChecksumError
from .errors import AssetError, ConfigError

logger = logging.getLogger(__name__)

FORMATS = ('spiece', 'v0.1')
ALIAS_MARKER = '__kobert_gluon_alias__'
SKT_DISTRIBUTION = 'kobert'


class KobertAliasWarning(UserWarning):
    """SKT's ``kobert`` package and kobert_gluon's ``kobert`` alias are both installed."""


def get_tokenizer_path(kobert_dir=None, cache_dir=None, format='spiece', download=True):
    """Path of the SentencePiece model file of the requested KoBERT format."""
    for name, value in (('kobert_dir', kobert_dir), ('cache_dir', cache_dir)):
        _arg.path('get_tokenizer_path', name, value, optional=True)
    _arg.text('get_tokenizer_path', 'format', format)
    _arg.flag('get_tokenizer_path', 'download', download)
    name = {'spiece': 'spiece', 'v0.1': 'sp_model_v01'}[_format_name(format)]
    return assets.resolve(name, kobert_dir=kobert_dir, cache_dir=cache_dir, download=download)


def tokenizer_files(kobert_dir=None, cache_dir=None):
    """role -> path of the KoBERT tokenizer the old API uses, in either format.

    The ``.spiece`` when one is found anywhere KoBERT files are looked up; else v0.1's pair
    (``tokenizer_78b3253a26.model`` + ``kobertvocab_f38b8a4d6d.json``, what a v0.1-era
    ``~/kobert`` holds), which gives the same ids; else the ``.spiece``, downloaded.
    """
    try:
        return {'tokenizer': assets.resolve('spiece', kobert_dir=kobert_dir, cache_dir=cache_dir, download=False)}
    except AssetNotFoundError:
        pass
    try:
        return {'tokenizer': assets.resolve('sp_model_v01', kobert_dir=kobert_dir, cache_dir=cache_dir, download=False),
                'vocab_json': assets.resolve('vocab_v01', kobert_dir=kobert_dir, cache_dir=cache_dir, download=False)}
    except AssetNotFoundError:
        pass
    return {'tokenizer': assets.resolve('spiece', kobert_dir=kobert_dir, cache_dir=cache_dir)}


def get_tokenizer(cachedir=None):
    """KoBERT's ``get_tokenizer`` (HEAD: ``get_tokenizer_path``): the path of the tokenizer file.

    The ``.spiece`` file, or in a v0.1-era folder that holds only v0.1's pair, its
    ``tokenizer_78b3253a26.model`` (:func:`tokenizer_files`; the vocab of
    ``get_mxnet_kobert_model`` then comes from the pair's ``.json``: the ids are the same).
    ``cachedir`` (KoBERT v0.2.x defaulted to ``".cache"``) is searched first, and remembered:
    a later call without it searches it too. The full lookup order is in ``kobert_gluon.assets``.
    """
    _arg.path('get_tokenizer', 'cachedir', cachedir, optional=True)
    return tokenizer_files(cache_dir=assets.remember_cache_dir(cachedir))['tokenizer']


def download(*args, **kwargs):
    """KoBERT's ``download``, in both of its signatures.

    v0.2.x ``download(url, chksum=None, cachedir='.cache')`` returns ``(path, is_cached)``
    of the file named by the end of ``url``, and ``(None, False)`` when it cannot be fetched
    (the reason is logged), as SKT's last version did. v0.1.x
    ``download(url, filename, chksum, cachedir='~/kobert/')`` returns the path (and raises
    :class:`AssetError` when it cannot be fetched). A corrupt file raises
    :class:`ChecksumError` in both.

    The file is looked up like every KoBERT file (``cachedir`` first, remembered as in
    :func:`get_tokenizer`); ``is_cached`` is False when it had to be downloaded. ``url`` is
    tried first (``s3://bucket/key`` as ``https://bucket.s3.amazonaws.com/key``), then, for a
    file kobert_gluon knows, its mirrors. ``chksum`` is an md5 or its first 10 hex digits;
    kobert_gluon knows it for its own files.
    """
    url, filename, chksum, cachedir, v01 = _download_arguments(args, kwargs)
    http_url = _http_url(url)
    filename = filename or posixpath.basename(urllib.parse.urlparse(http_url).path)
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
    base_url = http_url[:-len(filename)] if http_url.endswith('/' + filename) else None
    urls = () if base_url is not None else (http_url,)
    if urls:
        asset = assets.Asset(filename, asset.md5, urls=urls + asset.urls, hint=asset.hint)
    try:
        found = assets.fetch(asset, cache_dir=assets.remember_cache_dir(cachedir), base_url=base_url)
    except ChecksumError:
        raise
    except AssetError as error:
        if v01:
            raise
        logger.warning('download(%s) failed: %s', url, error)
        return None, False
    return found[0] if v01 else found


DOWNLOAD_SIGNATURES = {False: ('url', 'chksum', 'cachedir'), True: ('url', 'filename', 'chksum', 'cachedir')}


def _download_arguments(args, kwargs):
    """``(url, filename, chksum, cachedir, is_v01)`` from either signature of :func:`download`.

    v0.1's is recognised by a ``filename`` keyword, four positional arguments, or a second
    one that is a file name rather than a checksum (10 to 32 hex digits).
    """
    second = args[1] if len(args) > 1 else None
    v01 = ('filename' in kwargs or len(args) == 4
           or (isinstance(second, str) and not re.fullmatch('[0-9a-fA-F]{10,32}', second)))
    names = DOWNLOAD_SIGNATURES[v01]
    if len(args) > len(names):
        raise TypeError(f'download() takes at most {len(names)} positional arguments ({len(args)} given)')
    values = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f'download() got an unexpected keyword argument {name!r}')
        if name in values:
            raise TypeError(f'download() got multiple values for argument {name!r}')
        values[name] = value
    if 'url' not in values:
        raise TypeError("download() missing 1 required positional argument: 'url'")
    return values['url'], values.get('filename'), values.get('chksum'), values.get('cachedir'), v01


download.__signature__ = inspect.Signature(
    [inspect.Parameter('url', inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter('chksum', inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
     inspect.Parameter('cachedir', inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)])


# ---------------------------------------------------------------------------- SKT's dictionaries

def _entry(filename, chksum):
    return {'url': assets.HUGGINGFACE_LEGACY_URL + filename, 'fname': filename, 'chksum': chksum}


# SKT's module-level dictionaries (keys url, fname, chksum), each where SKT's modules had it;
# the URLs are the Hugging Face mirror of SKT's files (kobert.blob.core.windows.net is gone).
tokenizer = _entry('kobert_news_wiki_ko_cased-1087f8699e.spiece', 'ae5711deb3')  # kobert.utils v0.1.1+
onnx_kobert = _entry('kobert.onnx1.8.0.onnx', '6f6610f2e3b61da6de8dbce')  # kobert.utils v0.1.1+, onnx_kobert
mxnet_kobert = _entry('mxnet_kobert_45b6957552.params', '45b6957552')  # kobert.mxnet_kobert v0.1.1+
pytorch_kobert = _entry('kobert_v1.zip', '411b242919')  # kobert.pytorch_kobert v0.1.1+
vocab_v01 = _entry('kobertvocab_f38b8a4d6d.json', 'f38b8a4d6d')
tokenizer_v01 = _entry('tokenizer_78b3253a26.model', '78b3253a26')
# v0.1: one ``kobert_models`` per module
utils_kobert_models = {'onnx_kobert': onnx_kobert, 'tokenizer': tokenizer_v01}
mxnet_kobert_models = {'mxnet_kobert': mxnet_kobert, 'vocab': vocab_v01}
pytorch_kobert_models = {'pytorch_kobert': pytorch_kobert, 'vocab': vocab_v01}
bert_config = {'attention_probs_dropout_prob': 0.1, 'hidden_act': 'gelu', 'hidden_dropout_prob': 0.1,
               'hidden_size': 768, 'initializer_range': 0.02, 'intermediate_size': 3072,
               'max_position_embeddings': 512, 'num_attention_heads': 12, 'num_hidden_layers': 12,
               'type_vocab_size': 2, 'vocab_size': 8002}  # kobert.pytorch_kobert v0.1


def get_onnx(cachedir=None):
    """KoBERT v0.1's ``kobert.utils.get_onnx``: the path of SKT's ONNX KoBERT, found or downloaded.

    Raises :class:`AssetError` (saying how to make one from your own weights) when it
    cannot be found or fetched.
    """
    return fetch_entry(onnx_kobert, cachedir, hint=ONNX_HINT)[0]


ONNX_HINT = ('Or make an ONNX file from Gluon weights: kobert.onnx_kobert.get_onnx_kobert_model(model_file=PARAMS) '
             '(a BertModel) or `kobert-gluon export --format onnx` (a fine-tuned classifier).')


def fetch_entry(entry, cachedir=None, hint=''):
    """``(path, found_locally)`` of one of SKT's dictionaries, looked up like every KoBERT file."""
    known = assets.asset_for_filename(entry['fname'])
    asset = assets.Asset(entry['fname'], known.md5 if known else entry['chksum'], urls=(entry['url'],),
                         hint=(known.hint if known else '') or hint)
    return assets.fetch(asset, cache_dir=assets.remember_cache_dir(cachedir))


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


__all__ = ['download', 'get_tokenizer', 'get_tokenizer_path', 'get_onnx', 'tokenizer_files', 'kobert_alias_problems',
           'KobertAliasWarning']
