"""The optimisation recipe fine-tuning and pretraining share: bertadam without decay on
LayerNorm and biases, linear warmup then linear decay, global-norm clipping of the mean
gradient, one optimizer step; and the seeds that make a resumed run repeat an uninterrupted one."""
import hashlib
import math
import random

import gluonnlp as nlp
import mxnet as mx
import numpy as np
from mxnet.contrib import amp

from .. import arguments as _arg
from ..models.params import NonFiniteError


def learning_rate_at(step, num_train_steps, num_warmup_steps, peak):
    """Linear warmup to ``peak``, then linear decay to 0 at ``num_train_steps`` (clamped)."""
    if step < num_warmup_steps:
        return peak * step / num_warmup_steps
    decay_steps = max(num_train_steps - num_warmup_steps, 1)
    return max(peak * (1 - (step - num_warmup_steps) / decay_steps), 0.0)


def exclude_from_weight_decay(params):
    """bertadam's wd skips LayerNorm gamma/beta and every bias, as in BERT."""
    _arg.instance('exclude_from_weight_decay', 'params', params, (mx.gluon.ParameterDict, dict), 'a ParameterDict (model.collect_params())')
    excluded = [p for name, p in params.items() if name.endswith(('gamma', 'beta', 'bias'))]
    for p in excluded:
        p.wd_mult = 0.0
    return excluded


def clip_gradients(params, max_grad_norm, group_size):
    """Clip the mean gradient of the ``group_size`` sentences summed in ``params`` at
    ``max_grad_norm``; returns the mean gradient's norm before clipping.

    The gradients are sums (the loss is summed, and accumulation adds batches up), so the
    sum is clipped at ``max_grad_norm * group_size``; ``trainer.update(group_size)`` then
    divides by group_size, which makes k accumulated batches of b equal one batch of k*b.
    """
    norm = nlp.utils.clip_grad_global_norm(params, max_grad_norm * group_size)
    return float(norm.asscalar() if isinstance(norm, mx.nd.NDArray) else norm) / group_size


def optimizer_step(trainer, params, group_size, max_grad_norm, dtype='float32'):
    """One optimizer step from gradients that are sums over ``group_size`` sentences (of every
    rank: the engine's ``allreduce_grads`` sums the ranks'), float16 loss scaling undone,
    clipped (:func:`clip_gradients`) and divided by ``group_size``; then zeroed for the next
    accumulation group."""
    _arg.instance('optimizer_step', 'trainer', trainer, mx.gluon.Trainer, 'a gluon.Trainer')
    _arg.iterable('optimizer_step', 'params', params)
    _arg.integer('optimizer_step', 'group_size', group_size, minimum=1)
    _arg.real('optimizer_step', 'max_grad_norm', max_grad_norm, 0, None)
    _arg.text('optimizer_step', 'dtype', dtype)
    trainer.allreduce_grads()
    if dtype == 'float16':
        amp.unscale(trainer)  # clip the true gradients, not the loss-scaled ones
    clip_gradients(params, max_grad_norm, group_size)
    trainer.update(group_size)
    for param in params:
        param.zero_grad()


def check_finite(value, what, step):
    """``value`` (a loss) must be a finite number; else training stops here, before the step's
    update, so the last checkpoint saved stays the last good one."""
    if not math.isfinite(float(value)):
        raise NonFiniteError(f'{what} is {float(value)} at step {step}: training diverged; the last checkpoint '
                             '(last/) holds the weights before it. Lower --learning_rate or --max_grad_norm, '
                             'or check the data')
    return value


def checkpoint_seed(seed, epoch, batches_done):
    """The seed MXNet continues with after a mid-epoch checkpoint: a run resumed there starts
    from the same seed, so it draws exactly the dropout masks the uninterrupted run drew."""
    digest = hashlib.sha256(f'{seed}/{epoch}/{batches_done}'.encode()).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def pretraining_update(trainer, trainable, loss, learning_rate, max_grad_norm, step):
    """One pretraining optimizer step on the recorded scalar ``loss`` (already a mean)."""
    check_finite(loss.asscalar(), 'the pretraining loss', step)
    loss.backward()
    trainer.set_learning_rate(learning_rate)
    clip_gradients(trainable, max_grad_norm, group_size=1)
    trainer.update(1)
