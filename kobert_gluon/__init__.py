"""kobert_gluon: SKT Brain's KoBERT fine-tuning stack on MXNet/GluonNLP, working today.

Importing the package loads neither mxnet nor gluonnlp: it sets the CPU thread defaults
(which must precede mxnet), arranges the gluonnlp SentencePiece fix, and imports the rest
on first use of a name (PEP 562), so ``import kobert_gluon.assets`` or the ``kobert`` alias
can find files without mxnet.
"""
import importlib
import logging
import sys
import types

from ._version import __version__
from . import runtime, spm_compat, utils
from .errors import (AssetError, CheckpointError, ConfigError, ConversionError, DataError,
                     DeviceError, DistributedError, KobertGluonError, MissingExtraError,
                     ModelDirectoryError)

# Must run before the first `import mxnet` anywhere in the process.
CPU_DEFAULTS = runtime.configure_cpu()
spm_compat.install()

# public name -> the submodule that defines it, imported on first use
_LAZY = {
    'BERTDataset': 'data', 'LabelMap': 'data', 'read_table': 'data', 'stratified_split': 'data',
    'get_tokenizer': 'utils', 'get_tokenizer_path': 'utils',  # file paths: no mxnet
    'get_bert_tokenizer': 'tokenizer', 'get_vocab': 'tokenizer', 'load_tokenizer': 'tokenizer', 'train_sentencepiece': 'tokenizer',
    'BertConfig': 'bert_config', 'BERTClassifier': 'model', 'get_mxnet_kobert_model': 'model',
    'TextClassifier': 'pipeline', 'load': 'pipeline',
    'TrainConfig': 'training', 'train': 'training',
    'export': 'export',
}
_ERRORS = ['KobertGluonError', 'AssetError', 'CheckpointError', 'ConfigError', 'ConversionError',
           'DataError', 'DeviceError', 'DistributedError', 'MissingExtraError', 'ModelDirectoryError']
__all__ = ['__version__', *_LAZY, *_ERRORS]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{module}', __name__), name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The import system sets ``kobert_gluon.export`` to the submodule when it loads it; the
    package's public ``export`` stays the function (the module is ``sys.modules['kobert_gluon.export']``)."""

    def __setattr__(self, name, value):
        if name == 'export' and isinstance(value, types.ModuleType):
            value = value.export
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
# SKT's kobert package installed over the alias replaces the alias's code: only we can tell.
utils.warn_if_kobert_alias_mixed(check_distributions=False)
logging.getLogger(__name__).addHandler(logging.NullHandler())
