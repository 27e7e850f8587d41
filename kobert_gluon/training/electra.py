"""ELECTRA's replaced-token detection (``pretrain --objective electra``).

Each batch is masked as for masked-LM (:mod:`.masking`). The small generator
(:class:`~kobert_gluon.models.electra.Generator`) predicts the masked pieces; a piece is drawn
from its output distribution at every masked position (Gumbel-max from a numpy generator seeded
with (seed, step): no gradient flows through the draw). The discriminator, the BERTModel that is
saved as bert.params, reads the sequence with the drawn pieces in place and tells for every
non-padding position whether its piece was replaced. A drawn piece equal to the original counts
as not replaced, as in the paper. The loss is MLM(generator) + ``rtd_weight`` * RTD(discriminator).
"""
import logging
import os

import mxnet as mx
import numpy as np

from ..errors import CheckpointError, NonFiniteError
from ..fileio import atomic_path
from ..models.electra import build_electra_extras
from ..models.params import named_parameters, nonfinite_parameter
from .masking import FIRST_ORDINARY_ID
from .optim import pretraining_update

logger = logging.getLogger(__name__)

GENERATOR_FILE = 'generator.params'
OBJECTIVES = ('mlm', 'electra')


def gather_index(masked_positions):
    """Flat (row * width + position) index of every masked slot, for the generator's ``take``."""
    rows = np.arange(masked_positions.shape[0], dtype=np.int64)[:, None]
    return rows, masked_positions.astype(np.int64)


def sample_replacements(logits, rng):
    """One piece per row of ``logits`` (rows, vocab), drawn from softmax(logits) by Gumbel-max;
    special pieces (ids below 5) are never drawn, as masking never chooses them."""
    logits = np.asarray(logits, dtype=np.float64).copy()
    logits[:, :FIRST_ORDINARY_ID] = -np.inf
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def replace_tokens(batch, sampled):
    """``(discriminator input, RTD labels)`` of a masked batch and the ids drawn for its masked
    slots (``sampled``: one per slot, shape of ``masked_positions``). The input is the original
    sequence with the drawn id at each masked position; the label is 1 where that id differs
    from the original piece, 0 at every other position (padding and unmasked pieces included)."""
    weights = batch['masked_weights'] > 0
    rows = np.broadcast_to(np.arange(len(weights))[:, None], weights.shape)[weights]
    columns = batch['masked_positions'][weights]
    originals, drawn = batch['masked_ids'][weights], np.asarray(sampled).reshape(weights.shape)[weights]
    replaced = batch['token_ids'].copy()
    replaced[rows, columns] = drawn
    labels = np.zeros(replaced.shape, dtype=np.float32)
    labels[rows, columns] = (drawn != originals).astype(np.float32)
    return replaced, labels


def padding_mask(batch):
    """1.0 at every position below the row's valid length ([CLS] and [SEP] included), else 0."""
    width = batch['token_ids'].shape[1]
    return (np.arange(width)[None, :] < batch['valid_length'][:, None]).astype(np.float32)


def sigmoid_bce(logits, labels, mask, F=mx.nd):
    """Mean binary cross-entropy of ``logits`` against ``labels`` over the positions ``mask`` keeps
    (the numerically stable form: max(x, 0) - x z + log(1 + exp(-|x|)))."""
    losses = F.relu(logits) - logits * labels + F.log1p(F.exp(-F.abs(logits)))
    return (losses * mask).sum() / F.maximum(mask.sum(), 1)


def forward(disc, extras, batch, ctx, rng):
    """Generator MLM loss, RTD logits and the arrays they came from (recorded if autograd is on)."""
    inputs = {name: mx.nd.array(array, ctx=ctx, dtype=array.dtype) for name, array in batch.items()}
    rows, columns = gather_index(batch['masked_positions'])
    flat = mx.nd.array(rows * batch['token_ids'].shape[1] + columns, ctx=ctx, dtype='int32')
    gen_logits = extras.generator(inputs['token_ids'], inputs['segment_ids'], inputs['valid_length'], flat)
    weights = inputs['masked_weights'].reshape((-1,))
    log_probabilities = mx.nd.log_softmax(gen_logits, axis=-1)
    picked = mx.nd.pick(log_probabilities, inputs['masked_ids'].reshape((-1,)), axis=-1)
    mlm_loss = -(picked * weights).sum() / mx.nd.maximum(weights.sum(), 1)
    sampled = sample_replacements(gen_logits.asnumpy(), rng)
    replaced, labels = replace_tokens(batch, sampled)
    sequence, _, nsp_logits, _ = disc(mx.nd.array(replaced, ctx=ctx, dtype='int32'), inputs['segment_ids'],
                                      inputs['valid_length'], inputs['masked_positions'])
    return {'mlm_loss': mlm_loss, 'rtd_logits': extras.rtd(sequence), 'labels': labels, 'mask': padding_mask(batch),
            'nsp_logits': nsp_logits, 'gen_logits': gen_logits}


def electra_loss(outputs, ctx, rtd_weight):
    """``(loss, rtd_loss)``: MLM(generator) + rtd_weight * RTD(discriminator), and the RTD part."""
    labels, mask = mx.nd.array(outputs['labels'], ctx=ctx), mx.nd.array(outputs['mask'], ctx=ctx)
    rtd_loss = sigmoid_bce(outputs['rtd_logits'], labels, mask)
    return outputs['mlm_loss'] + rtd_weight * rtd_loss, rtd_loss


def rtd_figures(outputs, batch):
    """Accuracy of the discriminator over non-padding positions, its accuracy on the replaced
    ones, and the share of masked slots that were replaced."""
    predicted = outputs['rtd_logits'].asnumpy() > 0
    labels, mask = outputs['labels'] > 0, outputs['mask'] > 0
    replaced_share = labels.sum() / max(1, (batch['masked_weights'] > 0).sum())
    return {'rtd_accuracy': float((predicted == labels)[mask].mean()),
            'rtd_replaced_recall': float(predicted[labels].mean()) if labels.any() else 0.0,
            'replaced_share': float(replaced_share)}


def frozen_decoder(disc):
    """The discriminator's MLM decoder gets no gradient under ELECTRA (its tied output weight is
    the word embedding, which is trained): its own Dense, LayerNorm and output bias."""
    word = disc.word_embed[0].weight
    return [param for param in disc.decoder.collect_params().values() if param is not word]


# ---------------------------------------------------------------------------- generator.params

def extras_arrays(extras, disc):
    """Structural name -> array of the generator and RTD head, without the shared embeddings."""
    shared = {id(param) for param in disc.collect_params().values()}
    return {name: param for name, param in named_parameters(extras).items() if id(param) not in shared}


def save_extras(extras, disc, path):
    arrays = {name: param._reduce() for name, param in extras_arrays(extras, disc).items()}  # pylint: disable=protected-access
    bad = nonfinite_parameter(arrays)
    if bad:
        raise NonFiniteError(f'{path}: not saved: parameter {bad} holds NaN or Inf values (training diverged)')
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, arrays)


def load_extras(extras, disc, path, ctx):
    """Set the generator and RTD head from ``path``; a CheckpointError names what does not fit."""
    saved = mx.nd.load(path)
    expected = extras_arrays(extras, disc)
    wrong = sorted(set(expected) ^ set(saved)) or [name for name in expected
                                                   if saved[name].shape != expected[name].shape]
    if wrong:
        raise CheckpointError(f'{path}: not the generator of this run (--generator_size, size flags): {wrong[:3]}')
    for name, param in expected.items():
        param.set_data(saved[name].as_in_context(ctx))


def build_extras(config, disc, bert_config, ctx):
    """The generator and RTD head of an ELECTRA run; from generator.params beside --init_from
    when that file exists (continued ELECTRA pretraining), else Normal(0.02)."""
    extras = build_electra_extras(disc, bert_config, config.generator_size, ctx)
    beside = os.path.join(os.path.dirname(os.path.abspath(config.init_from)), GENERATOR_FILE) if config.init_from else None
    if beside and os.path.isfile(beside):
        load_extras(extras, disc, beside, ctx)
        logger.info('generator and RTD head continue from %s', beside)
    return extras


# ---------------------------------------------------------------------------- the step

def pair_loss(config, loss_function, nsp_logits, labels):
    """The pair objective's loss (next-sentence or sentence-order, one 2-way head), else None."""
    if not (config.next_sentence or config.sentence_order):
        return None
    return loss_function(nsp_logits, labels).mean()


def train_step(run, batch, learning_rate, step):
    """One optimizer step of generator and discriminator together; returns (generator MLM loss,
    pair loss, RTD loss, RTD accuracy, replaced share) of the batch. The draws come from a
    generator seeded with (seed, step), so a resumed run draws what the uninterrupted one did."""
    config = run.config
    rng = np.random.default_rng([config.seed, step])
    with mx.autograd.record():
        outputs = forward(run.model, run.extras, batch, run.ctx, rng)
        loss, rtd_loss = electra_loss(outputs, run.ctx, config.rtd_weight)
        nsp_loss = pair_loss(config, run.loss_function, outputs['nsp_logits'],
                             mx.nd.array(batch['next_sentence'], ctx=run.ctx, dtype='int32'))
        if nsp_loss is not None:
            loss = loss + nsp_loss
    pretraining_update(run.trainer, run.trainable, loss, learning_rate, config.max_grad_norm, step)
    figures = rtd_figures(outputs, batch)
    return (outputs['mlm_loss'].asscalar(), 0.0 if nsp_loss is None else nsp_loss.asscalar(), rtd_loss.asscalar(),
            figures['rtd_accuracy'], figures['replaced_share'])
