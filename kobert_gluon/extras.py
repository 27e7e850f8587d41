"""The optional extras (setup.py's ``extras_require``), each checked as a whole before its work
starts: ``transformers`` alone is not the convert extra, which also needs ``protobuf`` (for
transformers to read a SentencePiece model), ``safetensors`` and ``tokenizers``. A missing module
is a :class:`~kobert_gluon.errors.MissingExtraError` naming the extra and every missing package,
not "internal error (No module named 'google')" halfway through a conversion. Looking modules
up (``importlib.util.find_spec``) imports none of them, except the parent of a dotted name."""
import importlib.util

from .errors import MissingExtraError

# extra -> (module, pip package) its features import
EXTRAS = {
    'convert': (('transformers', 'transformers'), ('safetensors', 'safetensors'), ('tokenizers', 'tokenizers'),
                ('google.protobuf', 'protobuf')),
    'serve': (('fastapi', 'fastapi'), ('pydantic', 'pydantic'), ('uvicorn', 'uvicorn'),
              ('fastapi_offline', 'fastapi-offline')),
    'report': (('tensorboardX', 'tensorboardX'),),
    'onnx': (('torch', 'torch'), ('transformers', 'transformers'), ('safetensors', 'safetensors'),
             ('onnx', 'onnx'), ('onnxruntime', 'onnxruntime')),
    'horovod': (('horovod.mxnet', 'horovod'),),
}


def _found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package; a module set to None in sys.modules
        return False


def missing(extra):
    """The pip packages of ``extra`` that cannot be imported."""
    return [package for module, package in EXTRAS[extra] if not _found(module)]


def require_extra(extra, feature=None):
    """Raise MissingExtraError unless every module of ``extra`` can be imported."""
    absent = missing(extra)
    if absent:
        needed = f' (needed {feature})' if feature else ''
        raise MissingExtraError(extra, f'{", ".join(absent)}{needed}')
