"""Fine-tuning a BERTClassifier: KoBERT's notebook recipe, readable top to bottom in train().

The recipe: bertadam (epsilon 1e-9, wd 0.01, none on LayerNorm or biases), linear warmup then
linear decay, global-norm clipping, optional gradient accumulation, softmax cross-entropy.
Every epoch is evaluated on the validation split (which picks ``best/``); the test split is
scored once, on the selected model, at the end (test_report.json, confusion_matrix.png).
Checkpoints are atomic and never pickled; a run resumes exactly, also from mid-epoch, and Ctrl-C
or SIGTERM saves the state after the last completed optimizer step (:mod:`.interrupt`).
Metrics go to metrics.jsonl as training goes (:mod:`.report`).
"""
import contextlib
import dataclasses
import logging
import os
import sys
import time

import mxnet as mx
from mxnet.contrib import amp
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..device import parse_ctx

from ..fileio import read_json, write_json
from ..inference import tasks
from ..inference.classifier import TextClassifier
from ..inference.evaluate import evaluate_batches
from ..inference.metrics import format_report
from ..inference.model_dir import write_model_dir
from ..models import precision
from ..models.config import BertConfig
from ..models.pretrained import fine_tuning_start, record_tokenizer
from ..text.data import BERTDataset
from ..text.tokenizer import load_or_train_tokenizer
from . import checkpoint, resume, rundir
from .config import TrainConfig, bert_size, check_types, kobert_sized_config
from .distributed import (aggregate_report, check_same_weights, create_engine, global_batch_sizes,
                          root_first, sum_over_ranks, synchronize_start)
from .interrupt import InterruptGuard, TrainingInterrupted, interrupted, saving_on_interrupt
from .loop import Run, end_step, epoch_counts, log_progress, step, train_batch
from .optim import checkpoint_seed, exclude_from_weight_decay, seed_everything
from .plots import plot_training
from .report import MetricsLog, log_banner, summary_writer_class
from .splits import load_splits, make_loader, model_split_record

logger = logging.getLogger(__name__)

TEST_REPORT = 'test_report.json'
TASK = tasks.TEXT_CLASSIFICATION
PACKAGE_LOGGER = 'kobert_gluon'


# ---------------------------------------------------------------------------- data


# ---------------------------------------------------------------------------- model


def start_from(config):
    """(params file or None, its pretrain record or None) the BERT starts from: without --init_from,
    the demo and every --bert small run start from the checkpoint shipped in the package."""
    return fine_tuning_start(config.init_from, shipped=bert_size(config) == 'small')


def kobert_params(config, pretrained):
    """KoBERT's own params file when the run starts from it ('kobert' size, no --init_from)."""
    if pretrained is None and config.init_from is None and bert_size(config) == 'kobert':
        from ..assets import resolve
        return resolve('mxnet_params', kobert_dir=config.kobert_dir)
    return pretrained


def prepare_model(config, bert_config, num_classes, ctx, pretrained):
    """``pretrained``: the params file :func:`start_from` chose, or None (KoBERT's for 'kobert';
    random weights for --init_from none)."""
    pretrained = kobert_params(config, pretrained)
    model = TASK.build_model(bert_config, num_classes, config.dropout, ctx, bert_params=pretrained)
    model.hybridize(static_alloc=True, static_shape=not config.bucketing)
    return model


# ---------------------------------------------------------------------------- checkpoints

def save_checkpoint(directory, classifier, trainer, state, settings):
    """``last/``: a loadable model directory (``model/``) beside the optimizer state and settings."""
    def write_weights(tmp):  # not classifier.save: it would log the temporary path
        write_model_dir(os.path.join(tmp, 'model'), classifier.model, classifier.tokenizer_files,
                        classifier.config_dict())
    checkpoint.save_checkpoint(directory, trainer, state, write_weights, settings)


def load_checkpoint(directory, model, trainer, ctx, allow_pickle=False):
    def load_weights(checkpoint_dir):
        model.load_parameters(os.path.join(checkpoint_dir, 'model', 'model.params'), ctx=ctx)
    return checkpoint.load_checkpoint(directory, trainer, load_weights, allow_pickle=allow_pickle)


def new_state():
    return {'epoch': 0, 'step': 0, 'batches_done': 0, 'epoch_totals': None, 'best': None,
            'epochs_without_improvement': 0, 'stopped_early': None, 'lr_schedule': None,
            'history': {'steps': [], 'epochs': []}}


def settings_of(config):
    """The (resolved) config as written to train_config.json: what to rerun, not what to do to
    the directory."""
    return {**dataclasses.asdict(config), 'resume': False, 'overwrite': False, 'allow_pickle_resume': False,
            'extend': False}


def improved(report, best, metric):
    """No validation set: every epoch replaces the last (best/ is the last epoch)."""
    return report is None or best is None or report[metric] > best['value']


# ---------------------------------------------------------------------------- the recipe

def train(config):
    """Fine-tune a BERTClassifier as configured; returns the selected model (also in best/).

    Settings left at None take the defaults of the BERT size (:meth:`TrainConfig.resolved`)."""
    check_types(config, TrainConfig)
    config = config.resolved().validate()
    summary_writer_class(config.report_to)  # a missing extra fails before any work
    engine = create_engine(config.distributed)  # joins the other workers, if any
    ctx = engine.devices(parse_ctx(config.ctx))  # fail on a missing GPU before any work
    dtype = precision.resolve(config.dtype, ctx[0], training=True)
    run_dir = config.output_dir or rundir.unique_run_dir(run_name(config))
    config = dataclasses.replace(config, output_dir=run_dir)
    # Log lines go above the progress bars; Ctrl-C and SIGTERM stop between optimizer steps.
    with logs_above_bars(), InterruptGuard() as guard:
        if not engine.is_root:  # rank 0 holds the run directory and writes every file in it
            return _train(config, run_dir, ctx, dtype, engine, guard)
        with rundir.locked(run_dir):
            rundir.prepare(run_dir, config.resume, config.overwrite)
            return _train(config, run_dir, ctx, dtype, engine, guard)


@contextlib.contextmanager
def logs_above_bars():
    """The package logger's console handler (the CLI's) writes through tqdm, so log lines and
    progress bars do not collide; a logger without one (an API user's setup) is left alone."""
    package = logging.getLogger(PACKAGE_LOGGER)
    if not any(isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr)
               for handler in package.handlers):
        yield
        return
    with logging_redirect_tqdm(loggers=[package]):
        yield


def run_name(config):
    return os.path.splitext(os.path.basename(config.data))[0] if config.data else 'demo'


def _train(config, run_dir, ctx, dtype, engine, guard):
    run = Run(config, run_dir, ctx, dtype, engine, guard, settings=settings_of(config))
    try:
        record_start(run)
        load_data(run)
        build_model(run)
        log_banner(run, trained_tokenizer_path(run))
        run.state = resume_state(run)
        synchronize_start(engine, run.model, run.trainer, config.max_len, ctx[0])
        if engine.is_root and resume.finished(run, TEST_REPORT):
            return resume.finished_result(run, TEST_REPORT)
        if engine.is_root:
            run.metrics = MetricsLog(run_dir, config.report_to, run.state if config.resume else None)
        for epoch in range(run.state['epoch'] + 1, config.num_epochs + 1):
            if run.state['stopped_early']:
                break
            with saving_on_interrupt(run, lambda *args: save_checkpoint(*args)):
                totals = train_epoch(run, epoch)
                valid_report = validate(run)
            end_epoch(run, epoch, totals, valid_report)
        return final_test(run)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, TrainingInterrupted):
            raise
        raise interrupted(run) from interrupt
    finally:
        if run.metrics:
            run.metrics.close()


def record_start(run):
    """Settings written first; then the rows, the tokenizer and the starting weights, whose
    fingerprints a --resume must match."""
    config, engine = run.config, run.engine
    if config.resume and engine.is_root:
        run.recorded_epochs = resume.recorded_num_epochs(run.run_dir)
    if not config.resume and engine.is_root:  # a resumed run keeps its record until its inputs are checked
        write_json(os.path.join(run.run_dir, checkpoint.TRAIN_CONFIG_FILE), run.settings)
    seed_everything(config.seed)
    run.splits = load_splits(config)
    choose_tokenizer_and_weights(run)
    inputs = rundir.run_inputs(config, run.splits, run.tokenizer_files, run.bert_config)
    if engine.num_workers > 1:  # it sets the global batch: a resume with another count is refused
        inputs['workers'] = engine.num_workers
    if engine.is_root:
        if config.resume:
            rundir.check_inputs(run.run_dir, inputs)
            resume.check_num_epochs(run.run_dir, run.recorded_epochs, config)
        rundir.write_start(run.run_dir, run.settings, inputs, run.splits.record)
        run.splits.label_map.save(os.path.join(run.run_dir, 'labels.json'))


def choose_tokenizer_and_weights(run):
    config = run.config
    run.init_params, run.init_record = start_from(config)
    if run.init_record:  # a pretrain result: fine-tune with the tokenizer and size it was pretrained with
        run.tokenizer, run.vocab, run.tokenizer_files = record_tokenizer(run.init_params, run.init_record)
        run.bert_config = BertConfig(**run.init_record['bert'])
        return
    with root_first(run.engine):  # a tokenizer trained into the run directory is trained once, by rank 0
        run.tokenizer, run.vocab, run.tokenizer_files = load_or_train_tokenizer(
            [text for text, _ in run.splits.train], trained_tokenizer_path(run),
            kobert_dir=config.kobert_dir, download=bert_size(config) == 'kobert',
            vocab_size=config.tokenizer_vocab_size)
    run.bert_config = kobert_sized_config(config, run.vocab)


def trained_tokenizer_path(run):
    return os.path.join(run.run_dir, 'tokenizer.spiece')


def load_data(run):
    config, splits, engine = run.config, run.splits, run.engine
    pad = not config.bucketing

    def dataset(rows):
        return BERTDataset(rows, 0, 1, run.tokenizer, config.max_len, pad, False)
    run.data = {'train_data': dataset(splits.train), 'test_data': dataset(splits.test)}
    run.data['valid_loader'] = (make_loader(dataset(splits.valid), config, False, run.pad_id, engine)
                                if splits.valid else None)


def build_model(run):
    """The classifier, its trainer (every parameter trained) and the learning-rate schedule."""
    config, engine = run.config, run.engine
    precision.init_training(run.dtype)  # AMP rewrites operators, so it must precede the model
    run.init_params = kobert_params(config, run.init_params)
    model = prepare_model(config, run.bert_config, len(run.splits.label_map), run.ctx, run.init_params)
    # Saved models carry the split's hashes, so `evaluate` can tell the test set from the rest.
    run.classifier = TextClassifier(model, run.tokenizer, run.splits.label_map, run.bert_config, config.max_len,
                                    run.tokenizer_files, config.dropout, run.ctx[0],
                                    training={'split': model_split_record(run.splits)})
    params = model.collect_params()
    exclude_from_weight_decay(params)
    # Gradients add up over the batches of a step until they are zeroed after the update, which
    # is how accumulation works. Under MXNet 1.9.1's bf16 AMP 'add' gradients stay zero (global
    # norm 0 at every step: the demo never left chance), so bf16 runs, which validate() keeps
    # at accumulate 1, write them instead.
    params.setattr('grad_req', 'write' if run.dtype == 'bfloat16' else 'add')
    run.trainable = list(params.values())
    run.loss = TASK.loss()
    run.trainer = engine.make_trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                           'epsilon': config.epsilon, 'wd': config.weight_decay})
    if run.dtype == 'float16':
        amp.init_trainer(run.trainer)  # dynamic loss scaling
    steps_per_epoch = -(-len(make_loader(run.data['train_data'], config, False, run.pad_id, engine))
                        // config.accumulate)
    num_train_steps = steps_per_epoch * config.num_epochs
    run.schedule = {
        'steps_per_epoch': steps_per_epoch,
        'num_train_steps': num_train_steps, 'num_warmup_steps': int(num_train_steps * config.warmup_ratio),
        # Each step's sentences on all ranks together (their shares differ by one at most).
        'global_sizes': None if config.bucketing else global_batch_sizes(len(run.data['train_data']),
                                                                         config.batch_size, engine.num_workers)}


def resume_state(run):
    """A new run's state, or the newest complete checkpoint's on --resume (its learning-rate
    schedule recomputed for a new total with --extend: :mod:`.resume`)."""
    if not run.config.resume:
        return new_state()
    with root_first(run.engine):  # rank 0 repairs an interrupted checkpoint; the others then read it
        checkpoint.restore_interrupted(run.run_dir, 'best')
        newest = checkpoint.newest_checkpoint(run.run_dir, 'last')
    if not newest:
        logger.warning('%s has no complete checkpoint yet: starting at epoch 1', run.run_dir)
        return new_state()
    state = load_checkpoint(newest, run.model, run.trainer, run.ctx, run.config.allow_pickle_resume)
    logger.info('resuming %s after epoch %d, batch %d (step %d)', newest, state['epoch'],
                state['batches_done'], state['step'])
    old_epochs = read_json(os.path.join(newest, checkpoint.TRAIN_CONFIG_FILE)).get('num_epochs')
    if run.config.extend and old_epochs and old_epochs != run.config.num_epochs:
        per_epoch = run.schedule['steps_per_epoch']
        state['lr_schedule'] = resume.extended_schedule(state, per_epoch * old_epochs, per_epoch * run.config.num_epochs,
                                                        run.config.warmup_ratio, run.config.learning_rate)
        logger.info('--extend: %d -> %d epochs; the learning rate decays to 0 at step %d (%s)', old_epochs,
                    run.config.num_epochs, run.schedule['num_train_steps'], state['lr_schedule'])
    return state


def train_epoch(run, epoch):
    """One pass over this rank's batches (the ones before a mid-epoch checkpoint skipped);
    returns the epoch's totals (loss, correct, seen, seconds)."""
    config, engine, state = run.config, run.engine, run.state
    # Seeding per epoch gives a resumed run exactly the batch order and dropout masks of an
    # uninterrupted one. Every rank shuffles alike (and takes its share of each global batch);
    # dropout masks differ.
    seed_everything(config.seed * 1000 + epoch)
    mx.random.seed(engine.rank_seed(config.seed * 1000 + epoch))
    train_loader = make_loader(run.data['train_data'], config, True, run.pad_id, engine)
    skip = state['batches_done']
    # A mid-epoch checkpoint holds the totals of every rank: rank 0 carries them on.
    totals = (engine.is_root and state['epoch_totals']) or {'loss': 0.0, 'correct': 0, 'seen': 0, 'seconds': 0.0}
    totals['started'] = time.time() - totals['seconds']
    run.progress = None
    progress = tqdm(total=len(train_loader), initial=skip, desc=f'epoch {epoch}/{config.num_epochs}',
                    leave=False, disable=None if engine.is_root else True)
    clock = {'logged': time.monotonic(), 'bar': not progress.disable}
    group_size = 0  # sentences whose gradients are summed in the parameters so far
    run.num_batches = len(train_loader)
    for batch_id, batch in enumerate(train_loader):
        if batch_id < skip:
            if batch_id + 1 == skip:
                mx.random.seed(engine.rank_seed(checkpoint_seed(config.seed, epoch, skip)))
            continue
        batch_loss, group = train_batch(run, batch, batch_id, totals)
        group_size += group
        entry = {'step': state['step'], 'epoch': epoch, 'loss': batch_loss}
        if (batch_id + 1) % config.accumulate == 0 or batch_id + 1 == len(train_loader):
            with run.guard.deferred():  # Ctrl-C waits for the step, then saves the state after it
                step(run, group_size)
                end_step(run, epoch, batch_id, totals, {**entry, 'step': state['step']})
            group_size = 0
            save_mid_epoch(run, epoch, batch_id, len(train_loader), totals)
        else:
            state['history']['steps'].append({**entry, 'lr': run.trainer.learning_rate})
        progress.update(1)
        progress.set_postfix(loss=f'{batch_loss:.4f}', lr=f'{run.trainer.learning_rate:.2e}',
                             acc=f"{totals['correct'] / totals['seen']:.4f}")
        log_progress(run, epoch, batch_id, len(train_loader), batch_loss, totals, clock)
    progress.close()
    return totals


def save_mid_epoch(run, epoch, batch_id, num_batches, totals):
    """--save_every: a checkpoint inside the epoch (MXNet's seed after each step makes a run
    resumed from it draw exactly the uninterrupted run's dropout masks)."""
    config, engine, state = run.config, run.engine, run.state
    if not (config.save_every and state['step'] % config.save_every == 0 and batch_id + 1 < num_batches):
        return
    state['batches_done'] = batch_id + 1
    state['epoch_totals'] = {**sum_over_ranks(engine, epoch_counts(totals)), 'seconds': time.time() - totals['started']}
    if engine.is_root:
        save_checkpoint(os.path.join(run.run_dir, 'last'), run.classifier, run.trainer, state, run.settings)
        logger.debug('checkpoint after epoch %d batch %d (step %d) saved in %s', epoch, batch_id + 1,
                     state['step'], os.path.join(run.run_dir, 'last'))


def validate(run):
    """The validation report of the epoch's weights (None without a validation set)."""
    check_same_weights(run.engine, run.model.collect_params())
    # Each rank evaluated its share of the rows: the reports add up their confusion matrices.
    valid_loader = run.data['valid_loader']
    if not valid_loader:
        return None
    return aggregate_report(run.engine, evaluate_batches(run.model, valid_loader, run.ctx,
                                                         len(run.splits.label_map), 'validating'))


def end_epoch(run, epoch, totals, valid_report):
    """The epoch's training and validation metrics (no test: the test set is scored once, at the
    end), selection of best/, early stopping, and the epoch's checkpoint and plots."""
    engine, state = run.engine, run.state
    seconds = time.time() - totals['started']
    totals = sum_over_ranks(engine, epoch_counts(totals))
    train_loss, train_accuracy = totals['loss'] / totals['seen'], totals['correct'] / totals['seen']
    state['history']['epochs'].append({'epoch': epoch, 'train_loss': train_loss, 'train_accuracy': train_accuracy,
                                       'seconds': seconds, 'valid': valid_report})
    logger.info('epoch %d: train loss %.4f accuracy %.4f, %.1f s | validation %s (of %d epochs)', epoch,
                train_loss, train_accuracy, seconds, _summary(valid_report), run.config.num_epochs)
    state.update(epoch=epoch, batches_done=0, epoch_totals=None)
    select(run, epoch, valid_report)
    if engine.is_root:
        with run.guard.deferred():  # the checkpoint and the epoch's record go together
            save_checkpoint(os.path.join(run.run_dir, 'last'), run.classifier, run.trainer, state, run.settings)
            run.metrics.epoch(epoch, state['step'], seconds, train_loss, train_accuracy, valid_report)
        logger.info('checkpoint of epoch %d saved in %s', epoch, os.path.join(run.run_dir, 'last'))
        write_plots(state['history'], run.run_dir, run.splits.label_map.names)


def select(run, epoch, valid_report):
    """best/ follows the validation metric; early stopping counts the epochs without improvement."""
    config, state = run.config, run.state
    if improved(valid_report, state['best'], config.select_metric):
        if run.engine.is_root:
            run.classifier.save(os.path.join(run.run_dir, 'best'))
        state['best'] = {'epoch': epoch, 'metric': config.select_metric if valid_report else None,
                         'value': valid_report[config.select_metric] if valid_report else None}
        state['epochs_without_improvement'] = 0
    else:
        state['epochs_without_improvement'] += 1
    if config.early_stopping and state['epochs_without_improvement'] >= config.early_stopping:
        state['stopped_early'] = epoch
        logger.info('early stopping after epoch %d: no validation %s improvement for %d epochs',
                    epoch, config.select_metric, config.early_stopping)


def final_test(run):
    """The selected model (best/), scored once on the test split: test_report.json, its report
    in the log, and the plots with the selected model's test results (confusion_matrix.png)."""
    classifier, state = run.classifier, run.state
    classifier.history, classifier.run_dir, classifier.test_report = state['history'], run.run_dir, None
    if not run.engine.is_root:  # rank 0 alone tests the selected model: its weights are in its best/
        return classifier
    best_dir = os.path.join(run.run_dir, 'best')
    label_map = run.splits.label_map
    run.model.load_parameters(os.path.join(best_dir, 'model.params'), ctx=run.ctx)
    report = evaluate_batches(run.model, make_loader(run.data['test_data'], run.config, False, run.pad_id), run.ctx,
                              len(label_map), 'testing the selected model')
    selection = state['best']
    write_json(os.path.join(run.run_dir, TEST_REPORT), {
        'evaluated': 'once, on the selected model (best/); the test set was not used for selection',
        'selected_epoch': selection['epoch'], 'select_metric': selection['metric'],
        'validation_value': selection['value'], 'test_rows': len(run.splits.test), **report})
    if selection['metric']:
        logger.info('selected epoch %d by validation %s %.4f; test accuracy of the selected model %.4f '
                    '(macro-F1 %.4f), saved in %s\n%s', selection['epoch'], selection['metric'], selection['value'],
                    report['accuracy'], report['macro_f1'], best_dir, format_report(report, label_map.names))
    else:
        logger.info('no validation set, so no selection: kept the last epoch (%d); its test accuracy %.4f '
                    '(macro-F1 %.4f), saved in %s\n%s', selection['epoch'], report['accuracy'], report['macro_f1'],
                    best_dir, format_report(report, label_map.names))
    run.metrics.test(state['step'], selection['epoch'], report)
    plot_training(state['history'], run.run_dir, label_map.names, test_report=report,
                  selected_epoch=selection['epoch'])
    classifier.test_report = report
    return classifier


def _summary(report):
    if report is None:
        return 'none'
    return f"accuracy {report['accuracy']:.4f} macro-F1 {report['macro_f1']:.4f}"


def write_plots(history, run_dir, label_names):
    """The epoch's plots (loss and learning rate, accuracy); final_test adds the test results."""
    plot_training(history, run_dir, label_names)
