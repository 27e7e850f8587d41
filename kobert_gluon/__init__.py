"""kobert_gluon: SKT Brain's KoBERT fine-tuning stack on MXNet/GluonNLP, working today."""
import logging

from ._version import __version__  # noqa: F401

from . import runtime  # noqa: E402

# Must run before the first `import mxnet` anywhere in the process.
CPU_DEFAULTS = runtime.configure_cpu()

from . import spm_compat  # noqa: E402  (imports gluonnlp, hence mxnet)

spm_compat.apply()

from .errors import (AssetError, CheckpointError, ConfigError, ConversionError, DataError,  # noqa: E402
                     DeviceError, DistributedError, KobertGluonError, MissingExtraError,
                     ModelDirectoryError)
from .data import BERTDataset, LabelMap, read_table, stratified_split  # noqa: E402
from .tokenizer import (get_bert_tokenizer, get_tokenizer, get_tokenizer_path,  # noqa: E402
                        get_vocab, load_tokenizer, train_sentencepiece)
from .model import BertConfig, BERTClassifier, get_mxnet_kobert_model  # noqa: E402
from .pipeline import TextClassifier, load  # noqa: E402
from .training import TrainConfig, train  # noqa: E402
from .pretrain import PretrainConfig  # noqa: E402  (run it with kobert_gluon.pretrain.pretrain)

logging.getLogger(__name__).addHandler(logging.NullHandler())
