"""Heads on a BERT: KoBERT's notebook classifier. (Tasks that use a head are registered in
:mod:`kobert_gluon.inference.tasks`.)"""
import mxnet as mx
from mxnet.gluon import nn

from .. import arguments as _arg
from .bert import build_bert, load_pretrained_bert
from .config import BertConfig


class BERTClassifier(nn.HybridBlock):
    """KoBERT's notebook classifier: pooled [CLS] output -> optional Dropout -> Dense.

    ``valid_length`` is optional, as in the notebook's class: without it nothing is masked.
    """

    def __init__(self, bert, num_classes=2, dropout=None, prefix=None, params=None):
        _arg.instance('BERTClassifier', 'bert', bert, nn.Block, 'a gluonnlp BERTModel (kobert_gluon.build_bert)')
        _arg.integer('BERTClassifier', 'num_classes', num_classes, minimum=1)
        _arg.real('BERTClassifier', 'dropout', dropout, 0, 1, optional=True, open_interval=False)
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


def build_classifier(config, num_classes, dropout=0.1, ctx=mx.cpu(), bert_params=None):
    """A BERTClassifier on a new BERT of size ``config``; initialised as in the notebook.

    With ``bert_params`` (a pretrained BERT file) the encoder starts from it; otherwise it
    is drawn from Normal(0.02). The head is always Normal(0.02).
    """
    _arg.instance('build_classifier', 'config', config, BertConfig, 'a BertConfig')
    _arg.integer('build_classifier', 'num_classes', num_classes, minimum=1)
    _arg.real('build_classifier', 'dropout', dropout, 0, 1, optional=True, open_interval=False)
    _arg.instance('build_classifier', 'ctx', ctx, (mx.Context, list, tuple), 'an mxnet context (mx.cpu(), mx.gpu(0))')
    _arg.path('build_classifier', 'bert_params', bert_params, optional=True)
    bert = build_bert(config, use_pooler=True, use_decoder=False, use_classifier=False)
    return _initialised(BERTClassifier(bert, num_classes=num_classes, dropout=dropout), ctx, bert_params)


def _initialised(model, ctx, bert_params):
    """Every parameter drawn from Normal(0.02), then the BERT's from ``bert_params`` if given."""
    model.initialize(init=mx.init.Normal(0.02), ctx=ctx)
    if bert_params is not None:
        load_pretrained_bert(model.bert, bert_params, ctx)
    return model


class BERTTagger(BERTClassifier):
    """A tag per position (token classification, transformers' BertForTokenClassification):
    every position of the sequence output -> optional Dropout -> Dense, no pooler."""

    def __init__(self, bert, num_tags, dropout=None, prefix=None, params=None):
        nn.HybridBlock.__init__(self, prefix=prefix, params=params)
        self.bert = bert
        with self.name_scope():
            self.classifier = nn.HybridSequential(prefix=prefix)
            if dropout:
                self.classifier.add(nn.Dropout(rate=dropout))
            # flatten=False: the Dense applies to the last axis of (batch, length, units)
            self.classifier.add(nn.Dense(units=num_tags, flatten=False, prefix=prefix))

    def hybrid_forward(self, F, token_ids, segment_ids, valid_length=None):
        if valid_length is None:
            sequence = self.bert(token_ids, segment_ids)
        else:
            sequence = self.bert(token_ids, segment_ids, F.cast(valid_length, 'float32'))
        return self.classifier(sequence)


def build_tagger(config, num_tags, dropout=0.1, ctx=mx.cpu(), bert_params=None):
    """A BERTTagger on a new BERT of size ``config`` (no pooler), initialised as build_classifier's."""
    bert = build_bert(config, use_pooler=False, use_decoder=False, use_classifier=False)
    return _initialised(BERTTagger(bert, num_tags=num_tags, dropout=dropout), ctx, bert_params)
