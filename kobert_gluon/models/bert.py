"""The KoBERT network (gluonnlp's BERTEncoder/BERTModel) and KoBERT's BERTClassifier head.

Parameters are built with gluonnlp's own classes in the layout of ``bert_12_768_12``, so
``save_parameters`` names match and SKT's ``mxnet_kobert_45b6957552.params`` loads as is.
"""
import logging
import os

import mxnet as mx
from gluonnlp.model import BERTEncoder, BERTModel
from mxnet.gluon import nn

from .. import assets
from ..errors import ConfigError, last_line
from .config import MAX_POSITIONS, BertConfig  # noqa: F401  (imported from here before)
from ..text.tokenizer import get_vocab

logger = logging.getLogger(__name__)


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

    ``model_file``: your own weights instead of SKT's ``mxnet_kobert_45b6957552.params``; any
    params file in the ``bert_12_768_12`` layout (gluonnlp's names, KoBERT's shapes). Its md5 is
    not checked, its parameter names and shapes are (:func:`check_bert_layout`).
    Without it, SKT's file is looked up like every KoBERT file: ``kobert_dir`` or
    ``KOBERT_HOME``, ``cachedir`` (remembered for later calls, as KoBERT's notebook relies
    on), ``./.cache``, ``~/kobert``, kobert_gluon's cache, then a download. So is the tokenizer
    for ``vocab``.
    """
    cachedir = assets.remember_cache_dir(cachedir)
    config = config or BertConfig.kobert()
    vocab = vocab if vocab is not None else get_vocab(kobert_dir=kobert_dir, cache_dir=cachedir)
    if len(vocab) != config.vocab_size:
        raise ConfigError(f'vocab has {len(vocab)} tokens but config.vocab_size={config.vocab_size}')
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
    """KoBERT's notebook classifier: pooled [CLS] output -> optional Dropout -> Dense.

    ``valid_length`` is optional, as in the notebook's class: without it nothing is masked.
    """

    def __init__(self, bert, num_classes=2, dropout=None, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.bert = bert
        with self.name_scope():
            self.classifier = nn.HybridSequential(prefix=prefix)
            if dropout:
                self.classifier.add(nn.Dropout(rate=dropout))
            self.classifier.add(nn.Dense(units=num_classes, prefix=prefix))

    def __call__(self, token_ids, segment_ids, valid_length=None):
        # mxnet's Block.__call__ takes positional inputs only, and a hybridized block keeps the
        # inputs of its first call: "no valid_length" is every position valid, which masks nothing.
        if valid_length is None and isinstance(token_ids, mx.nd.NDArray):
            valid_length = mx.nd.full((token_ids.shape[0],), token_ids.shape[1], ctx=token_ids.context)
        if valid_length is None:
            return super().__call__(token_ids, segment_ids)
        return super().__call__(token_ids, segment_ids, valid_length)

    def hybrid_forward(self, F, token_ids, segment_ids, valid_length=None):
        if valid_length is None:
            _, pooled = self.bert(token_ids, segment_ids)
        else:
            # BERTDataset yields int32 lengths; the attention mask arithmetic needs floats.
            _, pooled = self.bert(token_ids, segment_ids, F.cast(valid_length, 'float32'))
        return self.classifier(pooled)


def load_pretrained_bert(bert, path, ctx):
    """Load a pretrained BERT file in the ``bert_12_768_12`` layout into ``bert``.

    The file may hold more than ``bert`` uses (the MLM decoder, the NSP classifier): those
    are ignored, as KoBERT's own loader did. Anything else that does not fit is a ConfigError
    listing the parameters (:func:`check_bert_layout`). A directory is a transformers BERT
    checkpoint (config.json + model.safetensors or pytorch_model.bin), converted on the fly.
    """
    if os.path.isdir(path):
        from ..interop.transformers import load_transformers_bert
        load_transformers_bert(bert, path)
        return
    check_bert_layout(bert, path)
    load_params(bert, path, ctx, ignore_extra=True)


# Parameters of bert_12_768_12 that a BERTModel without pooler/decoder/classifier leaves unused.
OPTIONAL_BERT_PARTS = ('pooler.', 'decoder.', 'classifier.')
LISTED_NAMES = 5


def check_bert_layout(bert, path):
    """ConfigError unless ``path`` holds every parameter of ``bert`` under gluonnlp's name,
    with its shape, and nothing but optional BERT heads besides."""
    try:
        saved = mx.nd.load(str(path))
    except (mx.base.MXNetError, OSError, ValueError) as error:
        raise ConfigError(f'{path}: not an MXNet parameter file ({last_line(error)})') from error
    if not isinstance(saved, dict):
        raise ConfigError(f'{path}: holds unnamed arrays, not the parameters of a BERT model')
    structural = bert._collect_params_with_prefix()
    expected = {name: param.shape for name, param in structural.items()}
    # A shared parameter (the MLM decoder's weight is the word embedding) may be saved under
    # one of its names only, as save_parameters(deduplicate=True) does; MXNet loads it so.
    aliases = {}
    for name, param in structural.items():
        aliases.setdefault(id(param), []).append(name)
    problems = []
    missing = sorted(name for name, param in structural.items()
                     if not any(alias in saved for alias in aliases[id(param)]))
    if missing:
        problems.append(f'{len(missing)} missing ({_listed(missing)})')
    wrong = [f'{name} {tuple(saved[name].shape)} instead of {_shape_text(expected[name])}'
             for name in sorted(set(expected) & set(saved)) if not _fits(expected[name], saved[name].shape)]
    if wrong:
        problems.append(f'{len(wrong)} with other shapes ({_listed(wrong)})')
    unknown = sorted(name for name in set(saved) - set(expected) if not name.startswith(OPTIONAL_BERT_PARTS))
    if unknown:
        problems.append(f'{len(unknown)} unexpected ({_listed(unknown)})')
    if problems:
        raise ConfigError(f'{path} is not a BERT params file in the bert_12_768_12 layout this model needs '
                          f'(gluonnlp BERTModel names): parameters {"; ".join(problems)}')


def _fits(expected, shape):
    """0 in an expected shape is a dimension MXNet infers later (deferred init)."""
    return len(expected) == len(shape) and all(e in (0, s) for e, s in zip(expected, shape))


def _shape_text(shape):
    return str(tuple('?' if d == 0 else d for d in shape)).replace("'", '')


def _listed(items):
    more = len(items) - LISTED_NAMES
    return ', '.join(items[:LISTED_NAMES]) + (f' and {more} more' if more > 0 else '')


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
