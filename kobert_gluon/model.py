"""The KoBERT network (gluonnlp's BERTEncoder/BERTModel) and KoBERT's BERTClassifier head.

Parameters are built with gluonnlp's own classes in the layout of ``bert_12_768_12``, so
``save_parameters`` names match and SKT's ``mxnet_kobert_45b6957552.params`` loads as is.
"""
import dataclasses
import logging

import mxnet as mx
from gluonnlp.model import BERTEncoder, BERTModel
from mxnet.gluon import nn

from . import assets
from .errors import last_line
from .tokenizer import KOBERT_VOCAB_SIZE, get_vocab

logger = logging.getLogger(__name__)

MAX_POSITIONS = 512


@dataclasses.dataclass
class BertConfig:
    """Size of a BERT; the defaults are KoBERT's (= gluonnlp's bert_12_768_12)."""
    num_layers: int = 12
    units: int = 768
    hidden_size: int = 3072
    num_heads: int = 12
    max_length: int = MAX_POSITIONS
    dropout: float = 0.1
    vocab_size: int = KOBERT_VOCAB_SIZE
    token_type_vocab_size: int = 2

    def __post_init__(self):
        if self.units % self.num_heads:
            raise ValueError(f'units={self.units} must be divisible by num_heads={self.num_heads}')
        if self.max_length > MAX_POSITIONS:
            raise ValueError(f'max_length={self.max_length}: at most {MAX_POSITIONS}')

    @classmethod
    def kobert(cls, **overrides):
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides):
        """A 2-layer, 128-unit BERT that trains in minutes on two CPU cores."""
        return cls(**{'num_layers': 2, 'units': 128, 'hidden_size': 512, 'num_heads': 2,
                      'max_length': 128, **overrides})

    def to_dict(self):
        return dataclasses.asdict(self)


def build_bert(config, use_pooler=True, use_decoder=True, use_classifier=True):
    """An uninitialised gluonnlp BERTModel of the given size."""
    encoder = BERTEncoder(num_layers=config.num_layers, units=config.units,
                          hidden_size=config.hidden_size, max_length=config.max_length,
                          num_heads=config.num_heads, dropout=config.dropout,
                          output_attention=False, output_all_encodings=False)
    return BERTModel(encoder, config.vocab_size, token_type_vocab_size=config.token_type_vocab_size,
                     units=config.units, embed_size=config.units, word_embed=None,
                     use_pooler=use_pooler, use_decoder=use_decoder, use_classifier=use_classifier)


def get_mxnet_kobert_model(use_pooler=True, use_decoder=True, use_classifier=True, ctx=mx.cpu(0),
                           cachedir=None, model_file=None, kobert_dir=None, vocab=None, config=None):
    """``(model, vocab)`` with SKT's pretrained KoBERT weights, as KoBERT's function returned.

    The params file is looked up like every KoBERT file (``model_file``, ``kobert_dir`` or
    ``KOBERT_HOME``, the cache, then a download); so is the tokenizer for ``vocab``.
    """
    config = config or BertConfig.kobert()
    vocab = vocab if vocab is not None else get_vocab(kobert_dir=kobert_dir, cache_dir=cachedir)
    if len(vocab) != config.vocab_size:
        raise ValueError(f'vocab has {len(vocab)} tokens but config.vocab_size={config.vocab_size}')
    if model_file is None:
        model_file = assets.resolve('mxnet_params', kobert_dir=kobert_dir, cache_dir=cachedir)
    net = build_bert(config, use_pooler, use_decoder, use_classifier)
    net.initialize(ctx=ctx)
    load_pretrained_bert(net, model_file, ctx)
    return net, vocab


def load_params(block, path, ctx, ignore_extra=False, allow_missing=False):
    """``load_parameters`` with an error that says which file does not fit which model."""
    try:
        block.load_parameters(path, ctx=ctx, ignore_extra=ignore_extra, allow_missing=allow_missing,
                              cast_dtype=True)
    except (AssertionError, mx.base.MXNetError, ValueError, OSError) as error:
        raise ValueError(f'{path}: parameters do not fit this model ({last_line(error)})') from error


class BERTClassifier(nn.HybridBlock):
    """KoBERT's notebook classifier: pooled [CLS] output -> optional Dropout -> Dense."""

    def __init__(self, bert, num_classes=2, dropout=None, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.bert = bert
        with self.name_scope():
            self.classifier = nn.HybridSequential(prefix=prefix)
            if dropout:
                self.classifier.add(nn.Dropout(rate=dropout))
            self.classifier.add(nn.Dense(units=num_classes, prefix=prefix))

    def hybrid_forward(self, F, token_ids, segment_ids, valid_length):
        # BERTDataset yields int32 lengths; the attention mask arithmetic needs floats.
        _, pooled = self.bert(token_ids, segment_ids, F.cast(valid_length, 'float32'))
        return self.classifier(pooled)


def load_pretrained_bert(bert, path, ctx):
    """Load a pretrained BERT file in the ``bert_12_768_12`` layout into ``bert``.

    The file may hold more than ``bert`` uses (the MLM decoder, the NSP classifier): those
    are ignored, as KoBERT's own loader did.
    """
    load_params(bert, path, ctx, ignore_extra=True)


def build_classifier(config, num_classes, dropout=0.1, ctx=mx.cpu(), bert_params=None):
    """A BERTClassifier on a new BERT of size ``config``; initialised as in the notebook.

    With ``bert_params`` (a pretrained BERT file) the encoder starts from it; otherwise it
    is drawn from Normal(0.02). The head is always Normal(0.02).
    """
    bert = build_bert(config, use_pooler=True, use_decoder=False, use_classifier=False)
    model = BERTClassifier(bert, num_classes=num_classes, dropout=dropout)
    model.initialize(init=mx.init.Normal(0.02), ctx=ctx)
    if bert_params is not None:
        load_pretrained_bert(bert, bert_params, ctx)
    return model
