"""Masked-LM loss and masked-piece accuracy of a pretrained BERT on held-out lines.

The lines are masked exactly as pretraining masks (BERT's 80/10/10, optionally whole words),
from a fixed seed, so two checkpoints are scored on the same masked pieces. The loss is the
mean cross-entropy over every masked piece; the accuracy is the share predicted exactly. An ELECTRA result (:func:`evaluate_rtd`) is scored on
its generator's MLM and its discriminator's replaced-token detection.
"""
import os

import mxnet as mx
import numpy as np

from .. import arguments as _arg
from ..device import parse_ctx
from ..models.config import BertConfig
from ..models.pretrained import read_record, record_tokenizer_path
from ..text.tokenizer import get_vocab
from ..models.electra import build_electra_extras
from . import electra
from .config import PretrainConfig
from .masking import BatchStream, word_start_table
from .pretrain import build_pretraining_model

EVAL_SEED = 12345  # the masks of the held-out lines; fixed so every checkpoint sees the same ones


def evaluate_mlm(params_path, corpus, max_len=32, batch_size=64, whole_word_mask=True, ctx='cpu', seed=EVAL_SEED):
    """``{'lines', 'masked_pieces', 'mlm_loss', 'masked_accuracy'}`` of the pretraining result
    ``params_path`` (a bert.params beside its pretrain.json) on ``corpus``, read once."""
    params_path = _arg.path('evaluate_mlm', 'params_path', params_path)
    corpus = _arg.path('evaluate_mlm', 'corpus', corpus)
    _arg.integer('evaluate_mlm', 'max_len', max_len, minimum=3)
    _arg.integer('evaluate_mlm', 'batch_size', batch_size, minimum=1)
    _arg.flag('evaluate_mlm', 'whole_word_mask', whole_word_mask)
    _arg.integer('evaluate_mlm', 'seed', seed, minimum=0)
    record = read_record(params_path)
    tokenizer_path = record_tokenizer_path(params_path, record)
    vocab = get_vocab(tokenizer_path)
    device = parse_ctx(ctx)[0]
    model = build_pretraining_model(BertConfig(**record['bert']), device, params_path)
    config = PretrainConfig(corpus=corpus, tokenizer=tokenizer_path, max_len=max_len, batch_size=batch_size,
                            whole_word_mask=whole_word_mask, seed=seed, num_procs=0, chunk_lines=1 << 20)
    stream = BatchStream(config, tokenizer_path, vocab, word_start_table(vocab) if whole_word_mask else None)(
        {'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0})
    totals = {'lines': 0, 'masked_pieces': 0, 'loss': 0.0, 'correct': 0}
    for batch, position in stream:
        if position['epoch'] > 0:
            break
        add_batch(totals, model, batch, device)
    stream.close()  # the generator: ends the corpus reader
    pieces = max(totals['masked_pieces'], 1)
    return {'lines': totals['lines'], 'masked_pieces': totals['masked_pieces'],
            'mlm_loss': totals['loss'] / pieces, 'masked_accuracy': totals['correct'] / pieces,
            'max_len': max_len, 'whole_word_mask': whole_word_mask, 'seed': seed}


def add_batch(totals, model, batch, ctx):
    inputs = {name: mx.nd.array(array, ctx=ctx, dtype=array.dtype) for name, array in batch.items()}
    _, _, _, mlm_logits = model(inputs['token_ids'], inputs['segment_ids'], inputs['valid_length'],
                                inputs['masked_positions'])
    logits = mlm_logits.asnumpy().reshape((-1, mlm_logits.shape[-1])).astype(np.float64)
    labels = batch['masked_ids'].reshape(-1)
    weights = batch['masked_weights'].reshape(-1) > 0
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    totals['loss'] += float(-log_probabilities[np.arange(len(labels)), labels][weights].sum())
    totals['correct'] += int((logits.argmax(axis=1) == labels)[weights].sum())
    totals['masked_pieces'] += int(weights.sum())
    totals['lines'] += len(batch['token_ids'])


def record_heldout(params_path, corpus, **settings):
    """evaluate_mlm's result, as pretrain.json records it (``heldout``), with the corpus's fingerprint."""
    params_path = _arg.path('record_heldout', 'params_path', params_path)
    corpus = _arg.path('record_heldout', 'corpus', corpus)
    from ..text.corpus import corpus_fingerprint
    return {**evaluate_mlm(params_path, corpus, **settings), 'corpus': corpus_fingerprint(corpus)}


# ---------------------------------------------------------------------------- held-out figures

def evaluate_rtd(params_path, corpus, max_len=32, batch_size=64, whole_word_mask=True, seed=EVAL_SEED):
    """The generator's masked-LM loss and accuracy and the discriminator's RTD accuracy and AUC
    (over every non-padding position) of an ELECTRA result on ``corpus``, read once, on CPU."""
    record, ctx = read_record(params_path), mx.cpu()
    tokenizer_path = record_tokenizer_path(params_path, record)
    vocab = get_vocab(tokenizer_path)
    bert_config = BertConfig(**record['bert'])
    disc = build_pretraining_model(bert_config, ctx, params_path)
    extras = build_electra_extras(disc, bert_config, record['generator']['size'], ctx)
    generator_path = os.path.join(os.path.dirname(os.path.abspath(params_path)), electra.GENERATOR_FILE)
    electra.load_extras(extras, disc, generator_path, ctx)
    config = PretrainConfig(corpus=corpus, tokenizer=tokenizer_path, max_len=max_len, batch_size=batch_size,
                            whole_word_mask=whole_word_mask, seed=seed, num_procs=0, chunk_lines=1 << 20)
    stream = BatchStream(config, tokenizer_path, vocab, word_start_table(vocab) if whole_word_mask else None)(
        {'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0})
    rng, scores, labels, losses, correct, pieces = np.random.default_rng(seed), [], [], 0.0, 0, 0
    for batch, position in stream:
        if position['epoch'] > 0:
            break
        outputs = electra.forward(disc, extras, batch, ctx, rng)
        weights = batch['masked_weights'].reshape(-1) > 0
        count = int(weights.sum())
        losses += outputs['mlm_loss'].asscalar() * count
        correct += int((outputs['gen_logits'].asnumpy().argmax(axis=1) == batch['masked_ids'].reshape(-1))[weights].sum())
        pieces += count
        mask = outputs['mask'] > 0
        scores.append(outputs['rtd_logits'].asnumpy()[mask])
        labels.append(outputs['labels'][mask] > 0)
    stream.close()
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    return {'masked_pieces': pieces, 'generator_mlm_loss': losses / max(pieces, 1),
            'generator_masked_accuracy': correct / max(pieces, 1), 'positions': len(labels),
            'replaced_share_of_positions': float(labels.mean()), 'rtd_accuracy': float(((scores > 0) == labels).mean()),
            'rtd_accuracy_always_original': float(1 - labels.mean()),
            'rtd_replaced_recall': float((scores[labels] > 0).mean()), 'rtd_auc': rank_auc(scores, labels),
            'max_len': max_len, 'whole_word_mask': whole_word_mask, 'seed': seed}


def rank_auc(scores, labels):
    """Area under the ROC curve: the chance a replaced position scores above an original one
    (Mann-Whitney U from the ranks, ties counted half)."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # tied scores share their mean rank
    positives, negatives = labels.sum(), (~labels).sum()
    if not positives or not negatives:
        return None
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
