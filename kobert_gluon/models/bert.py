"""The KoBERT network (gluonnlp's BERTEncoder/BERTModel) and KoBERT's BERTClassifier head.

Parameters are built with gluonnlp's own classes in the layout of ``bert_12_768_12``, so
``save_parameters`` names match and SKT's ``mxnet_kobert_45b6957552.params`` loads as is.
"""
import logging
import os

import gluonnlp as nlp
import mxnet as mx
from gluonnlp.model import BERTEncoder, BERTModel

from .. import arguments as _arg
from .. import assets
from ..errors import ConfigError
from .config import BertConfig
from .hf_weights import load_transformers_bert
from .params import check_bert_layout, load_params
from ..text.tokenizer import get_vocab

logger = logging.getLogger(__name__)


def build_bert(config, use_pooler=True, use_decoder=True, use_classifier=True):
    """An uninitialised gluonnlp BERTModel of the given size."""
    _arg.instance('build_bert', 'config', config, BertConfig, 'a BertConfig')
    for name, value in (('use_pooler', use_pooler), ('use_decoder', use_decoder), ('use_classifier', use_classifier)):
        _arg.flag('build_bert', name, value)
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
    for name, value in (('use_pooler', use_pooler), ('use_decoder', use_decoder), ('use_classifier', use_classifier)):
        _arg.flag('get_mxnet_kobert_model', name, value)
    _arg.instance('get_mxnet_kobert_model', 'ctx', ctx, (mx.Context, list, tuple), 'an mxnet context (mx.cpu(), mx.gpu(0))')
    for name, value in (('cachedir', cachedir), ('model_file', model_file), ('kobert_dir', kobert_dir)):
        _arg.path('get_mxnet_kobert_model', name, value, optional=True)
    if vocab is not None:
        _arg.instance('get_mxnet_kobert_model', 'vocab', vocab, nlp.Vocab, 'a gluonnlp vocab (kobert_gluon.get_vocab)')
    if config is not None:
        _arg.instance('get_mxnet_kobert_model', 'config', config, BertConfig, 'a BertConfig')
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


def load_pretrained_bert(bert, path, ctx):
    """Load a pretrained BERT file in the ``bert_12_768_12`` layout into ``bert``.

    The file may hold more than ``bert`` uses (the MLM decoder, the NSP classifier): those
    are ignored, as KoBERT's own loader did. Anything else that does not fit is a ConfigError
    listing the parameters (:func:`check_bert_layout`). A directory is a transformers BERT
    checkpoint (config.json + model.safetensors or pytorch_model.bin), converted on the fly.
    """
    if os.path.isdir(path):
        load_transformers_bert(bert, path)
        return
    check_bert_layout(bert, path)
    load_params(bert, path, ctx, ignore_extra=True)


