"""Fine-tuning: KoBERT's notebook recipe, readable top to bottom in train(), for every task.

The recipe: bertadam (epsilon 1e-9, wd 0.01, none on LayerNorm or biases), linear warmup then
linear decay, global-norm clipping, optional gradient accumulation; the head, the loss and the
metrics are the task's (--task: :mod:`kobert_gluon.tasks`; softmax cross-entropy for the
notebooks' classification).
Every epoch is evaluated on the validation split (which picks ``best/``); the test split is
scored once, on the selected model, at the end (test_report.json and the task's figures, e.g.
confusion_matrix.png).
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
from ..inference.classifier import classifier_class
from ..inference.evaluate import collect_batches
from ..inference.model_dir import write_model_dir
from ..models import precision
from ..models.config import BertConfig
from ..models.pretrained import fine_tuning_start, record_tokenizer
from ..tasks import registry
from ..text.tokenizer import load_or_train_tokenizer
from . import checkpoint, resume, rundir
from .resume import load_checkpoint, new_state, resume_state, save_checkpoint, settings_of
from .config import TrainConfig, bert_size, check_types, kobert_sized_config
from .distributed import (check_same_weights, create_engine, gather_rows, global_batch_sizes,
                          root_first, sum_over_ranks, synchronize_start)
from .interrupt import InterruptGuard, TrainingInterrupted, interrupted, saving_on_interrupt
from .loop import Run, carried_totals, end_step, epoch_counts, log_progress, new_totals, running_value, step, train_batch
from .optim import checkpoint_seed, exclude_from_weight_decay, seed_everything
from .plots import plot_training
from .report import MetricsLog, log_banner, summary_writer_class
from .splits import load_splits, make_loader, model_split_record

logger = logging.getLogger(__name__)

TEST_REPORT = 'test_report.json'
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


def prepare_model(config, bert_config, num_outputs, ctx, pretrained):
    """The task's model; ``pretrained``: the params file :func:`start_from` chose, or None
    (KoBERT's for 'kobert'; random weights for --init_from none)."""
    pretrained = kobert_params(config, pretrained)
    model = registry.get(config.task).build_model(bert_config, num_outputs, config.dropout, ctx,
                                                  bert_params=pretrained)
    model.hybridize(static_alloc=True, static_shape=not config.bucketing)
    return model


def improved(task, report, best, metric):
    """No validation set: every epoch replaces the last (best/ is the last epoch)."""
    return report is None or best is None or task.improved(report[metric], best['value'], metric)


# ---------------------------------------------------------------------------- the recipe

def train(config):
    """Fine-tune a model for ``config.task`` as configured; returns the selected model (also in best/).

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
    run = Run(config, run_dir, ctx, dtype, engine, guard, settings=settings_of(config), task=registry.get(config.task))
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
            run.metrics = MetricsLog(run_dir, config.report_to, run.state if config.resume else None, run.task)
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
            training_texts(run.splits.train), trained_tokenizer_path(run),
            kobert_dir=config.kobert_dir, download=bert_size(config) == 'kobert',
            vocab_size=config.tokenizer_vocab_size)
    run.bert_config = kobert_sized_config(config, run.vocab)


def training_texts(examples):
    """Every sentence of the training rows (both of a pair), for a tokenizer trained on them."""
    return [text for example in examples for text in (example.text, example.text_pair) if text is not None]


def trained_tokenizer_path(run):
    return os.path.join(run.run_dir, 'tokenizer.spiece')


def load_data(run):
    config, splits, engine = run.config, run.splits, run.engine
    pad, pair = not config.bucketing, config.text_pair_column is not None

    settings = task_settings(config, run.task)

    def dataset(examples, name):
        return run.task.encode_examples(examples, run.tokenizer, config.max_len, pad, pair,
                                        splits.label_map.names, settings, splits.parts[name].source)
    run.data = {'train_data': dataset(splits.train, 'train'), 'test_data': dataset(splits.test, 'test')}
    run.data['valid_loader'] = (make_loader(dataset(splits.valid, 'valid'), config, False, run.pad_id, engine,
                                            run.task) if splits.valid else None)
    truncation = getattr(run.data['train_data'], 'truncation', None)
    if truncation is not None and engine.is_root:  # sentences and entities --max_len cut (token tasks)
        write_json(os.path.join(run.run_dir, 'truncation.json'), {
            name: getattr(run.data[key], 'truncation', None) for name, key in (('train', 'train_data'),
                                                                              ('test', 'test_data'))})


def build_model(run):
    """The model, its trainer (every parameter trained) and the learning-rate schedule."""
    config, engine, task = run.config, run.engine, run.task
    precision.init_training(run.dtype)  # AMP rewrites operators, so it must precede the model
    run.init_params = kobert_params(config, run.init_params)
    model = prepare_model(config, run.bert_config, task.num_outputs(run.splits.label_map.names), run.ctx,
                          run.init_params)
    # Saved models carry the split's hashes, so `evaluate` can tell the test set from the rest.
    run.classifier = classifier_class(task)(model, run.tokenizer, run.splits.label_map, run.bert_config, config.max_len,
                                    run.tokenizer_files, config.dropout, run.ctx[0],
                                    training={'split': model_split_record(run.splits)}, task=task,
                                    task_settings=task_settings(config, task),
                                    pair=config.text_pair_column is not None)
    params = model.collect_params()
    exclude_from_weight_decay(params)
    # Gradients add up over the batches of a step until they are zeroed after the update, which
    # is how accumulation works. Under MXNet 1.9.1's bf16 AMP 'add' gradients stay zero (global
    # norm 0 at every step: the demo never left chance), so bf16 runs, which validate() keeps
    # at accumulate 1, write them instead.
    params.setattr('grad_req', 'write' if run.dtype == 'bfloat16' else 'add')
    run.trainable = list(params.values())
    run.loss = task.loss()
    run.trainer = engine.make_trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                           'epsilon': config.epsilon, 'wd': config.weight_decay})
    if run.dtype == 'float16':
        amp.init_trainer(run.trainer)  # dynamic loss scaling
    steps_per_epoch = -(-len(make_loader(run.data['train_data'], config, False, run.pad_id, engine, task))
                        // config.accumulate)
    num_train_steps = steps_per_epoch * config.num_epochs
    run.schedule = {
        'steps_per_epoch': steps_per_epoch,
        'num_train_steps': num_train_steps, 'num_warmup_steps': int(num_train_steps * config.warmup_ratio),
        # Each step's sentences on all ranks together (their shares differ by one at most).
        'global_sizes': None if config.bucketing else global_batch_sizes(len(run.data['train_data']),
                                                                         config.batch_size, engine.num_workers)}


def task_settings(config, task):
    """The task settings a trained model records (a multi-label threshold, a tagger's stride)."""
    return {name: getattr(config, name) for name in task.default_settings}


def train_epoch(run, epoch):
    """One pass over this rank's batches (the ones before a mid-epoch checkpoint skipped);
    returns the epoch's totals (loss, seen, the running metric's sum and count, seconds)."""
    config, engine, state = run.config, run.engine, run.state
    # Seeding per epoch gives a resumed run exactly the batch order and dropout masks of an
    # uninterrupted one. Every rank shuffles alike (and takes its share of each global batch);
    # dropout masks differ.
    seed_everything(config.seed * 1000 + epoch)
    mx.random.seed(engine.rank_seed(config.seed * 1000 + epoch))
    train_loader = make_loader(run.data['train_data'], config, True, run.pad_id, engine, run.task)
    skip = state['batches_done']
    # A mid-epoch checkpoint holds the totals of every rank: rank 0 carries them on.
    totals = carried_totals(engine.is_root and state['epoch_totals'] or new_totals())
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
                             **{run.task.running_metric[:3]: f'{running_value(totals):.4f}'})
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
    valid_loader = run.data['valid_loader']
    if not valid_loader:
        return None
    return evaluate_split(run, valid_loader, 'validating', part='valid')[0]


def evaluate_split(run, loader, desc, every_rank=True, part=None):
    """``(report, collected rows)`` of the model on ``loader``. ``every_rank``: each rank holds its
    share of the rows, and the report is built from all of them (every rank must call it).
    A task with outputs per piece is scored on the split's sentences instead (windows merged,
    entities on characters), in one process."""
    if run.task.per_piece:
        rows = run.splits.parts[part]
        collected = run.classifier.collect_texts(rows.texts, rows.labels, run.config.batch_size)
    else:
        collected = collect_batches(run.model, loader, run.ctx, run.task, desc)
    if every_rank and not run.task.per_piece:
        collected = gather_rows(run.engine, collected)
    return run.task.report(collected, run.splits.label_map.names, run.classifier.task_settings), collected


def end_epoch(run, epoch, totals, valid_report):
    """The epoch's training and validation metrics (no test: the test set is scored once, at the
    end), selection of best/, early stopping, and the epoch's checkpoint and plots."""
    engine, state, task = run.engine, run.state, run.task
    seconds = time.time() - totals['started']
    totals = sum_over_ranks(engine, epoch_counts(totals))
    train_loss, train_metric = totals['loss'] / totals['seen'], running_value(totals)
    state['history']['epochs'].append({'epoch': epoch, 'train_loss': train_loss,
                                       f'train_{task.running_metric}': train_metric,
                                       'seconds': seconds, 'valid': valid_report})
    logger.info('epoch %d: train loss %.4f %s %.4f, %.1f s | validation %s (of %d epochs)', epoch, train_loss,
                task.running_metric, train_metric, seconds, task.summary(valid_report), run.config.num_epochs)
    state.update(epoch=epoch, batches_done=0, epoch_totals=None)
    select(run, epoch, valid_report)
    if engine.is_root:
        with run.guard.deferred():  # the checkpoint and the epoch's record go together
            save_checkpoint(os.path.join(run.run_dir, 'last'), run.classifier, run.trainer, state, run.settings)
            run.metrics.epoch(epoch, state['step'], seconds, train_loss, train_metric, valid_report)
        logger.info('checkpoint of epoch %d saved in %s', epoch, os.path.join(run.run_dir, 'last'))
        write_plots(run, state['history'])


def select(run, epoch, valid_report):
    """best/ follows the validation metric; early stopping counts the epochs without improvement."""
    config, state = run.config, run.state
    if improved(run.task, valid_report, state['best'], config.select_metric):
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
    in the log, and the plots with the selected model's test results (the task's figures)."""
    classifier, state, task = run.classifier, run.state, run.task
    classifier.history, classifier.run_dir, classifier.test_report = state['history'], run.run_dir, None
    if not run.engine.is_root:  # rank 0 alone tests the selected model: its weights are in its best/
        return classifier
    best_dir = os.path.join(run.run_dir, 'best')
    names = run.splits.label_map.names
    run.model.load_parameters(os.path.join(best_dir, 'model.params'), ctx=run.ctx)
    loader = make_loader(run.data['test_data'], run.config, False, run.pad_id, task=task)
    report, collected = evaluate_split(run, loader, 'testing the selected model', every_rank=False, part='test')
    selection = state['best']
    write_json(os.path.join(run.run_dir, TEST_REPORT), {
        'evaluated': 'once, on the selected model (best/); the test set was not used for selection',
        'task': task.name, 'selected_epoch': selection['epoch'], 'select_metric': selection['metric'],
        'validation_value': selection['value'], 'test_rows': len(run.splits.test), **report})
    if selection['metric']:
        logger.info('selected epoch %d by validation %s %.4f; test %s of the selected model, saved in %s\n%s',
                    selection['epoch'], selection['metric'], selection['value'], task.summary(report), best_dir,
                    task.format_report(report, names))
    else:
        logger.info('no validation set, so no selection: kept the last epoch (%d); its test %s, saved in %s\n%s',
                    selection['epoch'], task.summary(report), best_dir, task.format_report(report, names))
    run.metrics.test(state['step'], selection['epoch'], report)
    plot_test(run, state['history'], report, collected, selection['epoch'])
    classifier.test_report = report
    return classifier


def write_plots(run, history):
    """The epoch's plots (loss and learning rate, the metric per epoch); final_test adds the test results."""
    plot_training(history, run.run_dir, running_metric=run.task.running_metric)


def plot_test(run, history, report, collected, selected_epoch):
    """The plots with the selected model's test results: the task's figures (a confusion matrix for
    classification) and its test value marked on the per-epoch plot."""
    task = run.task
    plot_training(history, run.run_dir, running_metric=task.running_metric,
                  figures=task.figures(report, collected, run.splits.label_map.names, selected_epoch),
                  test_point=(selected_epoch, report.get(task.running_metric)))
