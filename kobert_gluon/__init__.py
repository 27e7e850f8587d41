"""kobert_gluon: SKT Brain's KoBERT fine-tuning stack on MXNet/GluonNLP, working today.

Importing the package loads neither mxnet nor gluonnlp: it sets the CPU thread defaults
(which must precede mxnet), arranges the gluonnlp SentencePiece fix, and imports the rest
on first use of a name (PEP 562), so ``import kobert_gluon.assets`` or the ``kobert`` alias
can find files without mxnet.
"""
import importlib
import logging
import sys

from ._version import __version__
from . import legacy, runtime, spm_compat

utils = legacy  # the old module name (kobert_gluon/utils.py is the same module)
from .errors import (AssetError, CheckpointError, ConfigError, ConversionError, DataError,
                     DeviceError, DistributedError, KobertGluonError, MissingExtraError,
                     ModelDirectoryError, NonFiniteError, StorageError)

# Must run before the first `import mxnet` anywhere in the process.
CPU_DEFAULTS = runtime.configure_cpu()
spm_compat.install()

# public name -> the submodule that defines it, imported on first use
_LAZY = {
    'BERTDataset': 'text.data', 'LabelMap': 'text.data', 'read_table': 'text.data',
    'stratified_split': 'text.data', 'demo_data_path': 'text.data',
    'get_tokenizer': 'legacy', 'get_tokenizer_path': 'legacy',  # file paths: no mxnet
    'get_bert_tokenizer': 'text.tokenizer', 'get_vocab': 'text.tokenizer', 'load_tokenizer': 'text.tokenizer',
    'train_sentencepiece': 'text.tokenizer',
    'BertConfig': 'models.config', 'BERTClassifier': 'models.heads', 'BERTTagger': 'models.heads', 'get_mxnet_kobert_model': 'models.bert',
    'TextClassifier': 'inference.classifier', 'EntityTagger': 'inference.classifier', 'load': 'inference.classifier',
    'evaluate': 'inference.evaluate', 'export': 'inference.export',
    'TrainConfig': 'training.config', 'PretrainConfig': 'training.config',
    'train': 'training.finetune', 'pretrain': 'training.pretrain', 'evaluate_mlm': 'training.mlm_eval', 'record_heldout': 'training.mlm_eval',
    'shipped_params': 'models.pretrained', 'read_record': 'models.pretrained',
    'record_tokenizer_path': 'models.pretrained',
    'from_transformers': 'interop.transformers', 'to_transformers': 'interop.transformers',
    'TokenIds': 'text.token_ids', 'export_onnx': 'interop.onnx', 'onnx_inputs': 'interop.onnx',
    # building blocks the benchmarks and advanced users compose
    'build_bert': 'models.bert', 'build_classifier': 'models.heads', 'classification_report': 'inference.metrics',
    'launch': 'training.launch', 'create_engine': 'training.distributed', 'synchronize_start': 'training.distributed', 'optimizer_step': 'training.optim',
    'exclude_from_weight_decay': 'training.optim', 'calibration_sample': 'inference.classifier',
    'PRECISIONS': 'models.precision', 'resolve_precision': 'models.precision', 'for_inference': 'models.precision',
    'init_training': 'models.precision', 'use_batch_dot_attention': 'models.attention',
    'cpu_count': 'runtime', 'cpu_flags': 'runtime', 'has_bf16': 'runtime', 'has_vnni': 'runtime',
    'THREAD_VARIABLES': 'runtime',
}
_ERRORS = ['KobertGluonError', 'AssetError', 'CheckpointError', 'ConfigError', 'ConversionError',
           'DataError', 'DeviceError', 'DistributedError', 'MissingExtraError', 'ModelDirectoryError',
           'NonFiniteError', 'StorageError']
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


# SKT's kobert package installed over the alias replaces the alias's code: only we can tell.
legacy.warn_if_kobert_alias_mixed(check_distributions=False)
logging.getLogger(__name__).addHandler(logging.NullHandler())
