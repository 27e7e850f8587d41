"""ELECTRA's two extra networks beside a gluonnlp BERTModel (the discriminator): a small
generator with an MLM head, and the replaced-token-detection head.

The generator shares the discriminator's token, segment and position embeddings: the very
``Parameter`` objects, so both networks' gradients add up in one array. As in ELECTRA's code
for a generator smaller than the discriminator, the embeddings keep the discriminator's width
``E``; a Dense projects them down to the generator's units and its MLM head projects back up to
``E`` before the tied output layer.
"""
import mxnet as mx
from gluonnlp.model.bert import BERTEncoderCell
from gluonnlp.model.block import GELU  # the one BERTModel's MLM decoder uses
from mxnet.gluon import nn

from ..errors import ConfigError

LAYER_NORM_EPS = 1e-12  # BERTEncoder's default, what the discriminator's embeddings use
HEAD_UNITS = 64  # ELECTRA keeps 64 units per attention head when it shrinks the generator


def generator_size(bert_config, fraction):
    """``(units, hidden_size, num_heads)`` of a generator ``fraction`` the discriminator's width."""
    units = max(HEAD_UNITS // 4, int(round(bert_config.units * fraction)))
    num_heads = max(1, units // HEAD_UNITS)
    if units % num_heads:
        raise ConfigError(f'generator_size={fraction}: {units} units do not split into {num_heads} heads')
    return units, max(units, int(round(bert_config.hidden_size * fraction))), num_heads


class Generator(nn.HybridBlock):
    """A small BERT whose MLM logits at ``gather_index`` (row * width + position, flat) fill the masks.

    ``disc`` is the discriminator BERTModel whose embedding Parameters are shared. Setting a
    Parameter as an attribute registers it with this block (MXNet's Block.__setattr__), so
    ``hybrid_forward`` receives it by name, hybridized or not.
    """

    def __init__(self, disc, bert_config, fraction, prefix='generator_', params=None):
        super().__init__(prefix=prefix, params=params)
        units, hidden_size, num_heads = generator_size(bert_config, fraction)
        self._vocab_size, self._embed_size = bert_config.vocab_size, bert_config.units
        self._max_length = bert_config.max_length
        self.word_weight = disc.word_embed[0].weight
        self.segment_weight = disc.token_type_embed[0].weight
        self.position_weight = disc.encoder.position_weight
        # A hybridized block accepts only inputs found in its own collect_params(): list them there too.
        self.params.update({param.name: param for param in (self.word_weight, self.segment_weight, self.position_weight)})
        with self.name_scope():
            self.embed_norm = nn.LayerNorm(in_channels=self._embed_size, epsilon=LAYER_NORM_EPS)
            self.dropout = nn.Dropout(bert_config.dropout)
            self.project = nn.Dense(units, in_units=self._embed_size, flatten=False)
            self.cells = nn.HybridSequential()
            for index in range(bert_config.num_layers):
                self.cells.add(BERTEncoderCell(units=units, hidden_size=hidden_size, num_heads=num_heads,
                                               dropout=bert_config.dropout, prefix=f'transformer{index}_',
                                               layer_norm_eps=LAYER_NORM_EPS))
            self.head = nn.HybridSequential()
            self.head.add(nn.Dense(self._embed_size, in_units=units, flatten=False, activation=None))
            self.head.add(GELU())
            self.head.add(nn.LayerNorm(in_channels=self._embed_size, epsilon=LAYER_NORM_EPS))
            self.output_bias = self.params.get('output_bias', shape=(self._vocab_size,), init='zeros')

    def hybrid_forward(self, F, token_ids, segment_ids, valid_length, gather_index,
                       word_weight, segment_weight, position_weight, output_bias):
        # pylint: disable=arguments-differ
        steps = F.contrib.arange_like(token_ids, axis=1)
        embedded = F.broadcast_add(F.Embedding(token_ids, word_weight, self._vocab_size, self._embed_size)
                                   + F.Embedding(segment_ids, segment_weight, 2, self._embed_size),
                                   F.expand_dims(F.Embedding(steps, position_weight, self._max_length,
                                                             self._embed_size), 0))
        hidden = self.project(self.dropout(self.embed_norm(embedded))).transpose((1, 0, 2))  # (T, B, units)
        # the attention cells take a (batch, length) valid length, as BERTEncoder builds it
        zeros = F.zeros_like(F.cast(steps, dtype='float32')).reshape((1, -1))
        attention_length = F.cast(F.broadcast_add(F.cast(valid_length, dtype='float32').reshape((-1, 1)), zeros),
                                  dtype='int32')
        for cell in self.cells:
            hidden, _ = cell(hidden, attention_length)
        flat = hidden.transpose((1, 0, 2)).reshape((-3, 0))  # (B * T, units)
        picked = self.head(F.take(flat, gather_index.reshape((-1,))))
        return F.FullyConnected(picked, word_weight, output_bias, num_hidden=self._vocab_size, flatten=False)


class ReplacedTokenHead(nn.HybridBlock):
    """ELECTRA's discriminator head: Dense(units) + GELU + Dense(1), one logit per position."""

    def __init__(self, units, prefix='rtd_', params=None):
        super().__init__(prefix=prefix, params=params)
        with self.name_scope():
            self.dense = nn.Dense(units, in_units=units, flatten=False)
            self.activation = GELU()
            self.out = nn.Dense(1, in_units=units, flatten=False)

    def hybrid_forward(self, F, sequence):  # pylint: disable=arguments-differ
        return self.out(self.activation(self.dense(sequence))).reshape((0, -1))


class ElectraExtras(nn.HybridBlock):
    """The generator and the RTD head in one block: what generator.params holds (the shared
    embeddings are saved in bert.params only)."""

    def __init__(self, disc, bert_config, fraction, prefix='electra_', params=None):
        super().__init__(prefix=prefix, params=params)
        with self.name_scope():
            self.generator = Generator(disc, bert_config, fraction)
            self.rtd = ReplacedTokenHead(bert_config.units)

    def hybrid_forward(self, F, *args):  # pylint: disable=arguments-differ
        raise NotImplementedError('call .generator and .rtd')


def build_electra_extras(disc, bert_config, fraction, ctx):
    """ElectraExtras on ``disc`` (already initialised), its own parameters from Normal(0.02)."""
    extras = ElectraExtras(disc, bert_config, fraction)
    shared = {id(param) for param in disc.collect_params().values()}
    for param in extras.collect_params().values():
        if id(param) not in shared:
            param.initialize(default_init=mx.init.Normal(0.02), ctx=ctx)
    # Some shapes are only inferred on a first forward pass; a resumed run loads before any step.
    extras.generator(mx.nd.array([[2, 3]], ctx=ctx), mx.nd.zeros((1, 2), ctx=ctx), mx.nd.array([2], ctx=ctx),
                     mx.nd.array([1], ctx=ctx, dtype='int32'))
    return extras
