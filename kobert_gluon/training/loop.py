"""The parts of one fine-tuning run that training/finetune.py's steps share (:class:`Run`), and
what happens at each batch: forward and backward, the optimizer step on the learning-rate
schedule, the state a Ctrl-C saves, and the progress log lines."""
import dataclasses
import logging
import time

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp

from ..inference.classifier import TextClassifier
from ..models.config import BertConfig
from ..tasks.inputs import Batch, model_inputs
from . import resume
from .config import TrainConfig
from .distributed import Engine
from .interrupt import InterruptGuard
from .optim import check_finite, checkpoint_seed, optimizer_step
from .report import MetricsLog

logger = logging.getLogger(__name__)

# Without a terminal (no progress bar) a progress line is logged at least this often.
PROGRESS_SECONDS = 30


@dataclasses.dataclass
class Run:
    """What the steps of one fine-tuning run share; each step fills in its part."""
    config: TrainConfig
    run_dir: str
    ctx: list
    dtype: str
    engine: Engine
    guard: InterruptGuard
    settings: dict = None
    splits: object = None
    tokenizer: object = None
    vocab: object = None
    tokenizer_files: dict = None
    bert_config: BertConfig = None
    init_params: str = None
    init_record: dict = None
    recorded_epochs: int = None  # num_epochs in train_config.json before a --resume
    data: dict = None  # name -> BERTDataset or loader: train_data, test_data, valid_loader
    classifier: TextClassifier = None
    trainer: object = None
    trainable: list = None
    schedule: dict = None  # steps_per_epoch, num_train_steps, num_warmup_steps, global_sizes
    state: dict = None
    progress: dict = None  # the epoch's state after its last completed optimizer step
    num_batches: int = None  # this rank's batches in the epoch
    metrics: MetricsLog = None
    loss: object = None
    task: object = None  # the Task (kobert_gluon.tasks) being fine-tuned

    @property
    def model(self):
        return self.classifier.model

    @property
    def pad_id(self):
        return self.vocab[self.vocab.padding_token]


def train_batch(run, batch, batch_id, totals):
    """Forward and backward on one batch, split over the devices; gradients add up in the
    parameters. Returns (mean loss, sentences the step's gradient sum counts for it)."""
    batch = Batch(*batch)
    batch_size = batch.label.shape[0]
    with mx.autograd.record():
        losses, logits = [], []
        for parts in zip(*(gluon.utils.split_and_load(a, run.ctx, even_split=False)
                           for a in (*model_inputs(batch), batch.label))):
            out = run.model(*parts[:3])
            losses.append(run.loss(out, parts[3]).sum())  # summed: gradients are sums (optim.clip_gradients)
            logits.append(out)
    if run.dtype == 'float16':
        with amp.scale_loss(losses, run.trainer) as scaled:
            mx.autograd.backward(scaled)
    else:
        mx.autograd.backward(losses)
    batch_loss = sum(l.asscalar() for l in losses) / batch_size
    check_finite(batch_loss, 'the training loss', run.state['step'] + 1)
    # split_and_load keeps order, so the concatenated outputs line up with the labels.
    metric_sum, metric_count = run.task.running(np.concatenate([o.astype('float32').asnumpy() for o in logits]),
                                                batch.label.asnumpy())
    totals['loss'] += batch_loss * batch_size
    totals['metric_sum'] += metric_sum
    totals['metric_count'] += metric_count
    totals['seen'] += batch_size
    global_sizes = run.schedule['global_sizes']
    return batch_loss, global_sizes[batch_id] if global_sizes else batch_size


def step(run, group_size):
    run.state['step'] += 1
    schedule = run.schedule
    run.trainer.set_learning_rate(resume.rate_at(run.state['step'], schedule['num_train_steps'],
                                                 schedule['num_warmup_steps'], run.config.learning_rate,
                                                 run.state.get('lr_schedule')))
    optimizer_step(run.trainer, run.trainable, group_size, run.config.max_grad_norm, run.dtype)


def end_step(run, epoch, batch_id, totals, entry):
    """After an optimizer step: its history entry, the state a Ctrl-C saves, and MXNet's seed
    set so that a run resumed here draws the dropout masks of an uninterrupted one."""
    state, engine = run.state, run.engine
    state['history']['steps'].append({**entry, 'lr': run.trainer.learning_rate})
    run.progress = {'epoch': epoch, 'batches_done': batch_id + 1, 'steps': len(state['history']['steps']),
                    'totals': {**epoch_counts(totals), 'seconds': time.time() - totals['started']}}
    mx.random.seed(engine.rank_seed(checkpoint_seed(run.config.seed, epoch, batch_id + 1)))


def log_progress(run, epoch, batch_id, num_batches, batch_loss, totals, clock):
    """Every log_interval batches, and without a progress bar at least every PROGRESS_SECONDS."""
    now = time.monotonic()
    if (batch_id + 1) % run.config.log_interval and (clock['bar'] or now - clock['logged'] < PROGRESS_SECONDS):
        return
    clock['logged'] = now
    value, lr = totals['metric_sum'] / max(totals['metric_count'], 1), run.trainer.learning_rate
    with run.guard.deferred():  # the record of a logged step is never lost to a Ctrl-C
        if run.metrics:
            run.metrics.step(epoch, batch_id + 1, run.state['step'], batch_loss, lr, value)
        logger.info('epoch %d batch %d/%d step %d loss %.4f lr %.3e %s %.4f', epoch, batch_id + 1, num_batches,
                    run.state['step'], batch_loss, lr, run.task.running_metric[:3], value)


def epoch_counts(totals):
    return {name: totals[name] for name in ('loss', 'seen', 'metric_sum', 'metric_count')}


def new_totals():
    """An epoch's running sums: loss and sentences, and the task's running metric's sum and count."""
    return {'loss': 0.0, 'seen': 0, 'metric_sum': 0.0, 'metric_count': 0, 'seconds': 0.0}


def carried_totals(totals):
    """A mid-epoch checkpoint's totals; those of 0.7 and before counted correct sentences."""
    if 'correct' in totals:
        totals = {**totals, 'metric_sum': totals.pop('correct'), 'metric_count': totals['seen']}
    return totals


def running_value(totals):
    return totals['metric_sum'] / max(totals['metric_count'], 1)
