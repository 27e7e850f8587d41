"""What a fine-tuning run reports while it trains: ``metrics.jsonl`` in the run directory
(always), TensorBoard scalars (``--report_to tensorboard``, through tensorboardX: the ``report``
extra), and the start banner's layout.

``metrics.jsonl`` holds one JSON object a line, appended and flushed as training goes:

- ``{"type": "step", "epoch", "batch", "step", "time", "loss", "lr", "train_<running metric>"}``
  at every log line (``log_interval`` batches, and without a terminal at least every 30 s);
- ``{"type": "epoch", "epoch", "step", "time", "seconds", "train_loss", "train_<running metric>",
  "valid_<metric>"...}`` after every epoch (valid_* null without a validation set);
- ``{"type": "test", "step", "time", "selected_epoch", "test_<metric>"...}`` once, for the
  selected model.

The running metric and the metrics are the task's (:attr:`Task.running_metric`,
:attr:`Task.summary_metrics`): for classification ``train_accuracy``, ``valid_accuracy``,
``valid_macro_f1``, ``test_accuracy``, ``test_macro_f1``; for regression mse and pearson,
spearman, mse; for multi-label exact_match and micro_f1, macro_f1, exact_match.

``time`` is seconds since the epoch (Unix time). A resumed run first drops the records after
the checkpoint it resumes from, so no step is written twice.
"""
import json
import logging
import os
import time

from ..errors import MissingExtraError
from ..extras import require_extra
from ..fileio import atomic_path, claim
from ..models.pretrained import describe_start
from ..tasks import registry
from .config import bert_size

logger = logging.getLogger(__name__)

METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'


def summary_writer_class(report_to):
    """tensorboardX's SummaryWriter for ``report_to='tensorboard'`` (None for 'none'); checked
    before any work is done."""
    if report_to != 'tensorboard':
        return None
    require_extra('report', 'for --report_to tensorboard')
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise MissingExtraError('report', 'tensorboardX (for --report_to tensorboard)') from None
    return SummaryWriter


def _kept(record, state):
    """Whether a record of an earlier attempt precedes the checkpoint ``state`` resumes from."""
    if record.get('type') == 'step':
        return (record['epoch'], record['batch']) <= (state['epoch'] + 1, state['batches_done'])
    if record.get('type') == 'epoch':
        return record['epoch'] <= state['epoch']
    return False  # the test record: the resumed run scores the test set again when it ends


class MetricsLog:
    """metrics.jsonl (and TensorBoard scalars) of one run; only the process that owns the run
    directory writes them."""

    def __init__(self, run_dir, report_to='none', resume_state=None, task=None):
        self.task = task or registry.get(None)
        self.path = os.path.join(run_dir, METRICS_FILE)
        claim(self.path)  # recorded in the run's manifest, so --overwrite removes it
        claim(os.path.join(run_dir, TENSORBOARD_DIR))
        if resume_state is not None and os.path.isfile(self.path):
            self._truncate(resume_state)
        writer_class = summary_writer_class(report_to)
        self.writer = None
        if writer_class is not None:
            # purge_step: TensorBoard hides the events of an earlier attempt after the checkpoint.
            purge = resume_state['step'] + 1 if resume_state else None
            self.writer = writer_class(logdir=os.path.join(run_dir, TENSORBOARD_DIR), purge_step=purge)

    def _truncate(self, state):
        with open(self.path, encoding='utf-8') as source:
            records = [json.loads(line) for line in source if line.strip()]
        kept = [record for record in records if _kept(record, state)]
        if len(kept) < len(records):
            logger.debug('%s: dropped %d records after the checkpoint', self.path, len(records) - len(kept))
        with atomic_path(self.path) as tmp:
            with open(tmp, 'w', encoding='utf-8') as out:
                out.writelines(json.dumps(record, ensure_ascii=False) + '\n' for record in kept)

    def _append(self, record):
        with open(self.path, 'a', encoding='utf-8') as out:
            out.write(json.dumps({**record, 'time': round(time.time(), 3)}, ensure_ascii=False) + '\n')
            out.flush()

    def _scalars(self, step, values):
        if self.writer is None:
            return
        for tag, value in values.items():
            if value is not None:
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def step(self, epoch, batch, step, loss, lr, train_value):
        running = self.task.running_metric
        self._append({'type': 'step', 'epoch': epoch, 'batch': batch, 'step': step, 'loss': loss, 'lr': lr,
                      f'train_{running}': train_value})
        self._scalars(step, {'train/loss': loss, 'train/lr': lr, f'train/{running}': train_value})

    def epoch(self, epoch, step, seconds, train_loss, train_value, valid_report):
        valid, running = valid_report or {}, self.task.running_metric
        metrics = {name: valid.get(name) for name in self.task.summary_metrics}
        self._append({'type': 'epoch', 'epoch': epoch, 'step': step, 'seconds': round(seconds, 3),
                      'train_loss': train_loss, f'train_{running}': train_value,
                      **{f'valid_{name}': value for name, value in metrics.items()}})
        self._scalars(step, {'epoch/train_loss': train_loss, f'epoch/train_{running}': train_value,
                             **{f'valid/{name}': value for name, value in metrics.items()}})

    def test(self, step, selected_epoch, report):
        metrics = {name: report[name] for name in self.task.summary_metrics}
        self._append({'type': 'test', 'step': step, 'selected_epoch': selected_epoch,
                      **{f'test_{name}': value for name, value in metrics.items()}})
        self._scalars(step, {f'test/{name}': value for name, value in metrics.items()})

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def format_banner(title, entries):
    """One log message of several lines: ``title`` then ``  name: text`` per entry."""
    width = max(len(name) for name, _ in entries)
    return '\n'.join([title] + [f'  {name + ":":<{width + 1}} {text}' for name, text in entries])


def log_banner(run, trained_tokenizer):
    """The start banner, one message: the data, the model, which weights and tokenizer it starts
    from and where they are, the device and precision, the recipe."""
    config, splits, bert = run.config, run.splits, run.bert_config
    sources = sorted({part['source'] for part in splits.record.values()})
    path = run.tokenizer_files.get('tokenizer')
    tokenizer = ("the pretraining result's SentencePiece" if run.init_record else
                 'SentencePiece trained on the training rows' if path == trained_tokenizer else
                 "KoBERT's SentencePiece")
    selection = (f'validation {config.select_metric} picks best/' if splits.valid else
                 'no validation set (valid_size=0): best/ will be the last epoch, no model selection')
    logger.info(format_banner(f'fine-tuning into {run.run_dir}', [
        ('data', f'train {len(splits.train)} / validation {len(splits.valid)} / test {len(splits.test)} '
                 f"sentences ({', '.join(sources)})"),
        ('task', f'{run.task.name}: {run.task.description}'
                 + (f' (sentence pairs: {config.text_column} + {config.text_pair_column})' if config.text_pair_column
                    else '')),
        ('labels', f'{len(splits.label_map)} {splits.label_map.names}'),
        ('model', f'{config.bert} BERT, {bert.num_layers} layers x {bert.units} units, max_len {config.max_len}'),
        ('weights', describe_start(run.init_params, run.init_record, config.init_from,
                                   kobert=bert_size(config) == 'kobert')),
        ('tokenizer', f'{tokenizer}, {len(run.vocab)} pieces ({path})'),
        ('device', f"{', '.join(map(str, run.ctx))} x {run.engine.num_workers} worker(s), precision {run.dtype}"),
        ('recipe', f'learning_rate {config.learning_rate:g}, batch_size {config.batch_size}, num_epochs '
                   f'{config.num_epochs}, {run.schedule["num_train_steps"]} steps, log every '
                   f'{config.log_interval} batches'),
        ('selection', selection)]))
