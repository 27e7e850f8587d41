"""Fine-tuning a BERTClassifier: KoBERT's notebook recipe, readable top to bottom in train().

The recipe: bertadam (epsilon 1e-9, wd 0.01, none on LayerNorm or biases), linear warmup then
linear decay, global-norm clipping, optional gradient accumulation, softmax cross-entropy.
Every epoch is evaluated on the validation split (which picks ``best/``) and, for the log as in
the notebook, on the test split; the selected model's test report is written once at the end.
Checkpoints are atomic and never pickled; a run resumes exactly, also from mid-epoch.
"""
import dataclasses
import hashlib
import logging
import math
import os
import random
import time
import typing
from typing import Optional

import gluonnlp as nlp
import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp
from tqdm.auto import tqdm

from . import checkpoint

from ..models import precision

from . import rundir
from ..assets import md5sum
from ..device import parse_ctx
from ..text.data import (BERTDataset, demo_data_path, LabelMap, check_max_len, label_key, read_table, rows_digest,
                   split_positions)
from .distributed import (ENGINES, Engine, aggregate_report, check_same_weights, create_engine,
                          global_batch_sizes, root_first, shard_batches, start, sum_over_ranks)
from ..errors import CheckpointError, ConfigError, DataError
from ..fileio import atomic_directory, write_json
from ..inference.metrics import classification_report, format_report
from ..models.bert import BertConfig, build_classifier
from ..inference.classifier import TextClassifier
from .plots import plot_training
from ..text.tokenizer import load_or_train_tokenizer

logger = logging.getLogger(__name__)

BERT_SIZES = ('auto', 'kobert', 'small')
DTYPES = ('float32', 'bfloat16', 'float16')
SELECT_METRICS = ('accuracy', 'macro_f1')
TEST_REPORT = 'test_report.json'
# Settings that shape the model a run produces; --resume refuses to change them mid-run.
RECIPE_FIELDS = ('text_column', 'label_column', 'test_size', 'valid_size', 'bert', 'max_len', 'batch_size',
                 'learning_rate', 'warmup_ratio', 'weight_decay', 'epsilon', 'max_grad_norm', 'accumulate',
                 'dropout', 'seed', 'dtype', 'bucketing', 'select_metric', 'tokenizer_vocab_size')


def field(default, help):
    return dataclasses.field(default=default, metadata={'help': help})


@dataclasses.dataclass
class OptimizerConfig:
    """The optimisation recipe fine-tuning and pretraining share: bertadam, linear warmup then
    linear decay, global-norm clipping (pretraining overrides the rate and epsilon defaults)."""
    learning_rate: float = field(5e-5, 'peak learning rate')
    warmup_ratio: float = field(0.1, 'share of steps with linearly rising learning rate')
    weight_decay: float = field(0.01, 'bertadam weight decay (not on LayerNorm or biases)')
    epsilon: float = field(1e-9, 'bertadam epsilon')
    max_grad_norm: float = field(1.0, 'global gradient norm clip')


@dataclasses.dataclass
class TrainConfig(OptimizerConfig):
    """Every setting of a fine-tuning run; the CLI's flags are these field names."""
    data: Optional[str] = field(None, 'labeled TSV/CSV/XLSX file; none: the embedded Korean demo set')
    text_column: str = field('text', 'column holding the sentences')
    label_column: str = field('label', 'column holding the labels (names or integers)')
    test_data: Optional[str] = field(None, 'separate test file; none: a stratified split of --data')
    test_size: float = field(0.2, 'share of --data held out for testing when there is no --test_data')
    valid_data: Optional[str] = field(None, 'separate validation file; none: a stratified split of the training part')
    valid_size: float = field(0.1, 'share of the training part held out to pick best/ (0: no selection, '
                                   'best/ is the last epoch)')
    num_classes: Optional[int] = field(None, 'expected number of classes; checked against the labels')
    init_from: Optional[str] = field(None, 'pretrained BERT params file (bert_12_768_12 layout) to start from, '
                                           "instead of KoBERT's own; a `kobert-gluon pretrain` result brings its "
                                           "tokenizer and size along; a transformers BERT directory is converted; "
                                           "'none': random weights. Without --data: a checkpoint shipped in "
                                           'kobert_gluon/resources/pretrained/ if there is one (none is shipped now)')
    kobert_dir: Optional[str] = field(None, 'directory holding the KoBERT files (else KOBERT_HOME, the cache, a download)')
    bert: str = field('auto', "'kobert' (12 layers, pretrained), 'small' (2 layers, from scratch), or 'auto': kobert when --data is given")
    max_len: int = field(64, 'tokens per sentence, [CLS] and [SEP] included')
    batch_size: int = field(64, 'sentences per optimizer step (before accumulation) on each worker')
    num_epochs: int = field(5, 'passes over the training set')
    accumulate: int = field(1, 'batches whose gradients add up to one step')
    dropout: float = field(0.1, 'dropout before the classifier head')
    log_interval: int = field(200, 'batches between log lines')
    seed: int = field(42, 'seed for the split, shuffling, dropout and initialisation')
    ctx: str = field('auto', "'auto', 'cpu', 'gpu' or 'gpu:0,1'")
    distributed: str = field('none', "'none', 'horovod' (under horovodrun) or 'dist_sync' (under kobert-gluon "
                                     "launch); the global batch is batch_size x workers x accumulate")
    dtype: str = field('float32', "'float32', 'bfloat16' (CPU AMP) or 'float16' (GPU AMP)")
    bucketing: bool = field(False, 'batch sentences of similar length, padded per batch')
    select_metric: str = field('accuracy', "validation metric that picks best/: 'accuracy' or 'macro_f1'")
    early_stopping: int = field(0, 'stop after this many epochs without validation improvement (0: never)')
    save_every: int = field(0, 'also checkpoint last/ every this many optimizer steps (0: once per epoch)')
    tokenizer_vocab_size: int = field(3000, 'pieces of a tokenizer trained on --data when KoBERT files are absent')
    output_dir: Optional[str] = field(None, 'run directory: checkpoints, best/ and last/ models, plots '
                                            '(none: a new runs/<name>-<date-time>)')
    resume: bool = field(False, 'continue the run in --output_dir from its newest complete checkpoint')
    overwrite: bool = field(False, 'delete a previous run in --output_dir and start over')
    allow_pickle_resume: bool = field(False, "resume from an old pickled trainer.states: unpickling can run "
                                             "arbitrary code, so only for files you made yourself")

    @classmethod
    def demo(cls, **overrides):
        """The embedded default: a small BERT learns the demo set in a few minutes on 2 cores."""
        return cls(**{'bert': 'small', 'batch_size': 32, 'num_epochs': 8, 'learning_rate': 5e-4,
                      'log_interval': 5, **overrides})

    def validate(self):
        """Type and range of every setting, before any work is done."""
        check_types(self)
        check_max_len(self.max_len, max_positions(self), 'max_len')
        for name in ('batch_size', 'num_epochs', 'accumulate', 'log_interval', 'tokenizer_vocab_size'):
            _check(self, name, getattr(self, name) >= 1, 'must be at least 1')
        for name in ('early_stopping', 'save_every'):
            _check(self, name, getattr(self, name) >= 0, 'must be 0 (off) or more')
        for name in ('learning_rate', 'epsilon', 'max_grad_norm'):
            _check(self, name, getattr(self, name) > 0, 'must be a positive number')
        _check(self, 'weight_decay', self.weight_decay >= 0, 'must be 0 or more')
        _check(self, 'dropout', 0 <= self.dropout < 1, 'must be in [0, 1)')
        _check(self, 'warmup_ratio', 0 <= self.warmup_ratio < 1, 'must be in [0, 1)')
        _check(self, 'test_size', 0 < self.test_size < 1, 'must be between 0 and 1')
        _check(self, 'valid_size', 0 <= self.valid_size < 1, 'must be in [0, 1)')
        _check(self, 'num_classes', self.num_classes is None or self.num_classes >= 2, 'must be at least 2')
        for name, choices in (('bert', BERT_SIZES), ('dtype', DTYPES), ('select_metric', SELECT_METRICS),
                              ('distributed', ENGINES)):
            _check(self, name, getattr(self, name) in choices, f'expected one of {choices}')
        if self.resume and self.overwrite:
            raise ConfigError('resume and overwrite exclude each other: --resume continues the run in '
                              '--output_dir, --overwrite deletes it')
        if self.resume and not self.output_dir:
            raise ConfigError('--resume needs --output_dir: the run directory to continue')
        if self.distributed != 'none' and not self.output_dir:
            raise ConfigError(f'--distributed {self.distributed} needs --output_dir: one run directory for '
                              'every worker')
        if self.dtype == 'bfloat16' and self.accumulate > 1:
            raise ConfigError('accumulate > 1 is not available with dtype=bfloat16: under MXNet 1.9.1\'s bf16 AMP '
                              'gradients that add up over several batches stay zero; use accumulate 1 with a '
                              'larger batch_size, or dtype float32')
        if self.distributed != 'none' and self.bucketing:
            raise ConfigError('bucketing is not available with --distributed: every rank must take the same '
                              'number of batches')
        return self


def check_types(config):
    """Each field holds its annotated type: 1.5 epochs or max_len '64' are errors, not surprises."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f'expected a TrainConfig, got {type(config).__name__}; '
                          'build one with TrainConfig(**settings)')
    for name, hint in typing.get_type_hints(TrainConfig).items():
        check_setting(name, getattr(config, name), hint)


def check_setting(name, value, hint, where=''):
    optional = typing.get_origin(hint) is typing.Union
    expected = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if value is None and optional:
        return
    accepted = (int, float) if expected is float else (expected,)
    if not isinstance(value, accepted) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(f'{where}{name}={value!r} should be {expected.__name__}')
    if expected is float and not math.isfinite(value):
        raise ConfigError(f'{where}{name}={value!r} must be a finite number')


def _check(config, name, ok, requirement):
    if not ok:
        raise ConfigError(f'{name}={getattr(config, name)!r}: {requirement}')


def max_positions(config):
    return BertConfig.kobert().max_length if bert_size(config) == 'kobert' else BertConfig.small().max_length


def learning_rate_at(step, num_train_steps, num_warmup_steps, peak):
    """Linear warmup to ``peak``, then linear decay to 0 at ``num_train_steps`` (clamped)."""
    if step < num_warmup_steps:
        return peak * step / num_warmup_steps
    decay_steps = max(num_train_steps - num_warmup_steps, 1)
    return max(peak * (1 - (step - num_warmup_steps) / decay_steps), 0.0)


def exclude_from_weight_decay(params):
    """bertadam's wd skips LayerNorm gamma/beta and every bias, as in BERT."""
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
    trainer.allreduce_grads()
    if dtype == 'float16':
        amp.unscale(trainer)  # clip the true gradients, not the loss-scaled ones
    clip_gradients(params, max_grad_norm, group_size)
    trainer.update(group_size)
    for param in params:
        param.zero_grad()


def checkpoint_seed(seed, epoch, batches_done):
    """The seed MXNet continues with after a mid-epoch checkpoint: a run resumed there starts
    from the same seed, so it draws exactly the dropout masks the uninterrupted run drew."""
    digest = hashlib.sha256(f'{seed}/{epoch}/{batches_done}'.encode()).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


# ---------------------------------------------------------------------------- data

@dataclasses.dataclass
class Splits:
    """Rows are (text, label id); ``record`` goes to split.json and into the saved models."""
    train: list
    valid: list
    test: list
    label_map: LabelMap
    record: dict


def load_splits(config):
    """Train / validation / test rows: separate files where given, else seeded stratified splits."""
    path = data_path(config)
    frame = read_table(path, config.text_column, config.label_column)
    labels = frame[config.label_column]
    parts = {'train': (frame, path, np.arange(len(frame)))}
    if config.test_data:
        parts['test'] = (read_table(config.test_data, config.text_column, config.label_column), config.test_data, None)
    else:
        kept, held = split_positions(labels, config.test_size, config.seed)
        parts['train'], parts['test'] = (frame.iloc[kept], path, kept), (frame.iloc[held], path, held)
    if config.valid_data:
        parts['valid'] = (read_table(config.valid_data, config.text_column, config.label_column), config.valid_data, None)
    elif config.valid_size > 0:
        train_frame, _, train_rows = parts['train']
        kept, held = split_positions(train_frame[config.label_column], config.valid_size, config.seed + 1)
        parts['train'] = (train_frame.iloc[kept], path, train_rows[kept])
        parts['valid'] = (train_frame.iloc[held], path, train_rows[held])
    for name in ('train', 'test'):
        if len(parts[name][0]) == 0:
            raise DataError(f'{parts[name][1]}: the {name} split is empty ({len(frame)} usable rows, '
                            f'test_size={config.test_size}, valid_size={config.valid_size}); use more data or '
                            'larger shares')
    label_map = LabelMap.from_values(parts['train'][0][config.label_column])
    check_labels(label_map, parts, config)

    def rows(name):
        part, source, _ = parts[name]
        return list(zip(part[config.text_column], label_map.encode(part[config.label_column], source)))
    record = {name: {'source': os.path.basename(source), 'rows': len(part),
                     'positions': None if positions is None else [int(p) for p in positions],
                     'sha256': rows_digest(part[config.text_column], part[config.label_column])}
              for name, (part, source, positions) in parts.items()}
    return Splits(rows('train'), rows('valid') if 'valid' in parts else [], rows('test'), label_map, record)


def check_labels(label_map, parts, config):
    train_source = parts['train'][1]
    if len(label_map) < 2:
        raise DataError(f'{train_source}: the training rows have only one label {label_map.names}; '
                        'a classifier needs at least two')
    for name in ('valid', 'test'):
        if name not in parts:
            continue
        part, source, _ = parts[name]
        unseen = sorted({label_key(v) for v in part[config.label_column]} - set(label_map.names))
        if unseen:
            raise DataError(f'{source}: label(s) {unseen} in the {name} rows never occur in the training rows; '
                            f'a class without training rows cannot be learned')
    if config.num_classes is not None and len(label_map) != config.num_classes:
        raise DataError(f'{train_source}: {len(label_map)} distinct labels {label_map.names} but '
                        f'num_classes={config.num_classes}')


def data_path(config):
    return config.data or demo_data_path()


def make_loader(dataset, config, shuffle, pad_id, engine=None):
    """This rank's DataLoader (one process's without ``engine``). Shuffling draws from numpy's
    global generator, as gluon's own loader does, so every rank must have seeded it alike."""
    if not config.bucketing:
        engine = engine or Engine()
        plan = shard_batches(len(dataset), config.batch_size, engine.rank, engine.num_workers, shuffle)
        return gluon.data.DataLoader(dataset, batch_sampler=[indices for indices, _ in plan])
    lengths = [int(item[1]) for item in dataset]  # one process only: TrainConfig.validate
    sampler = nlp.data.FixedBucketSampler(lengths, batch_size=config.batch_size, num_buckets=10,
                                          ratio=0, shuffle=shuffle)
    # Rounding widths to a multiple of 8 bounds how many shapes the graph is built for.
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=pad_id, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'),
                                       nlp.data.batchify.Pad(axis=0, pad_val=0, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'))
    return gluon.data.DataLoader(dataset, batch_sampler=sampler, batchify_fn=batchify)


def run_inputs(config, splits, tokenizer_files, bert_config):
    """What a run was started with; --resume refuses to continue with anything else."""
    def fingerprint(path):
        return None if path is None else {'md5': md5sum(path), 'bytes': os.path.getsize(path)}
    return {'data': fingerprint(data_path(config)), 'test_data': fingerprint(config.test_data),
            'valid_data': fingerprint(config.valid_data),
            'init_from': fingerprint(config.init_from) if config.init_from and os.path.isfile(config.init_from)
            else config.init_from,
            'tokenizer': {role: md5sum(path) for role, path in tokenizer_files.items()},
            'bert': bert_config.to_dict(), 'labels': splits.label_map.to_dict(),
            'recipe': {name: getattr(config, name) for name in RECIPE_FIELDS}}


# ---------------------------------------------------------------------------- model

def bert_size(config):
    return 'kobert' if config.bert == 'kobert' or (config.bert == 'auto' and config.data) else 'small'


def bert_config_for(config, vocab):
    bert_config = BertConfig.kobert() if bert_size(config) == 'kobert' else BertConfig.small(vocab_size=len(vocab))
    if len(vocab) != bert_config.vocab_size:
        raise ConfigError(f'the tokenizer has {len(vocab)} pieces, the {bert_size(config)} model '
                          f'{bert_config.vocab_size}')
    return bert_config


def start_from(config):
    """(params file or None, its pretrain record or None) the BERT starts from."""
    from .pretrain import fine_tuning_start
    return fine_tuning_start(config.init_from, demo=not config.data)


def prepare_model(config, bert_config, num_classes, ctx, pretrained):
    """``pretrained``: the params file :func:`start_from` chose, or None (KoBERT's for 'kobert')."""
    if pretrained is None and config.init_from is None and bert_size(config) == 'kobert':
        from ..assets import resolve
        pretrained = resolve('mxnet_params', kobert_dir=config.kobert_dir)
    model = build_classifier(bert_config, num_classes, config.dropout, ctx, bert_params=pretrained)
    model.hybridize(static_alloc=True, static_shape=not config.bucketing)
    return model


def evaluate(model, loader, ctx, num_classes, desc='evaluating'):
    """Report over the whole ``loader`` (every batch, not a sample)."""
    labels, predictions = [], []
    # No bar where INFO is off: ranks > 0 of a distributed run log warnings only.
    for token_ids, valid_length, segment_ids, label in tqdm(loader, desc=desc, leave=False, mininterval=1,
                                                            disable=None if logger.isEnabledFor(logging.INFO) else True):
        logits = forward(model, token_ids, segment_ids, valid_length, ctx[0])
        predictions.append(logits.argmax(axis=1).astype('int32').asnumpy())
        labels.append(label.asnumpy())
    return classification_report(np.concatenate(labels), np.concatenate(predictions), num_classes)


def forward(model, token_ids, segment_ids, valid_length, ctx):
    return model(token_ids.as_in_context(ctx), segment_ids.as_in_context(ctx), valid_length.as_in_context(ctx))


# ---------------------------------------------------------------------------- checkpoints

def save_checkpoint(directory, classifier, trainer, state, settings):
    """``last/``: a loadable model directory, the optimizer state (no pickle), the run's settings
    and ``state.json``, written last and listing every file's size, so a cut-short checkpoint
    is recognised. The directory is replaced atomically."""
    with atomic_directory(directory) as tmp:
        classifier.save(os.path.join(tmp, 'model'))
        checkpoint.save_trainer_state(trainer, tmp)
        write_json(os.path.join(tmp, rundir.CONFIG_FILE), settings)
        rundir.write_state(tmp, state)


def load_checkpoint(directory, model, trainer, ctx, allow_pickle=False):
    params = os.path.join(directory, 'model', 'model.params')
    try:
        model.load_parameters(params, ctx=ctx)
    except (mx.base.MXNetError, AssertionError, ValueError, OSError) as error:
        raise CheckpointError(f'{params}: cannot be loaded ({error.__class__.__name__})') from error
    if checkpoint.has_trainer_state(directory):
        checkpoint.load_trainer_state(trainer, directory)
    elif os.path.isfile(os.path.join(directory, checkpoint.LEGACY_PICKLE)):
        if not allow_pickle:
            raise CheckpointError(f'{os.path.join(directory, checkpoint.LEGACY_PICKLE)} is a pickled optimizer '
                                  'state (kobert_gluon < 0.4); unpickling a file can run arbitrary code. Only if '
                                  'you made it yourself, resume with --allow_pickle_resume')
        checkpoint.load_legacy_pickle(trainer, directory)
    else:
        raise CheckpointError(f'{directory}: no optimizer state ({checkpoint.STATE_JSON})')
    return rundir.read_state(directory)


def new_state():
    return {'epoch': 0, 'step': 0, 'batches_done': 0, 'epoch_totals': None, 'best': None,
            'epochs_without_improvement': 0, 'stopped_early': None, 'history': {'steps': [], 'epochs': []}}


def settings_of(config):
    """The config as written to train_config.json: what to rerun, not what to do to the directory."""
    return {**dataclasses.asdict(config), 'resume': False, 'overwrite': False, 'allow_pickle_resume': False}


def improved(report, best, metric):
    """No validation set: every epoch replaces the last (best/ is the last epoch)."""
    return report is None or best is None or report[metric] > best['value']


# ---------------------------------------------------------------------------- the recipe

def train(config):
    """Fine-tune a BERTClassifier as configured; returns the selected model (also in best/)."""
    check_types(config)
    config.validate()
    engine = create_engine(config.distributed)  # joins the other workers, if any
    ctx = engine.devices(parse_ctx(config.ctx))  # fail on a missing GPU before any work
    dtype = precision.resolve(config.dtype, ctx[0], training=True)
    run_dir = config.output_dir or rundir.unique_run_dir(run_name(config))
    config = dataclasses.replace(config, output_dir=run_dir)
    if not engine.is_root:  # rank 0 holds the run directory and writes every file in it
        return _train(config, run_dir, ctx, dtype, engine)
    with rundir.locked(run_dir):
        rundir.prepare(run_dir, config.resume, config.overwrite)
        return _train(config, run_dir, ctx, dtype, engine)


def run_name(config):
    return os.path.splitext(os.path.basename(config.data))[0] if config.data else 'demo'


def _train(config, run_dir, ctx, dtype, engine):
    settings = settings_of(config)
    if not config.resume and engine.is_root:  # a resumed run keeps its record until its inputs are checked
        write_json(os.path.join(run_dir, rundir.CONFIG_FILE), settings)
    seed_everything(config.seed)
    splits = load_splits(config)
    init_params, record = start_from(config)
    if record:  # a pretrain result: fine-tune with the tokenizer and size it was pretrained with
        from .pretrain import record_tokenizer
        tokenizer, vocab, tokenizer_files = record_tokenizer(init_params, record)
        bert_config = BertConfig(**record['bert'])
        logger.info('starting from %s (%d x %d BERT pretrained on %s)', init_params, bert_config.num_layers,
                    bert_config.units, record['corpus']['file'])
    else:
        with root_first(engine):  # a tokenizer trained into the run directory is trained once, by rank 0
            tokenizer, vocab, tokenizer_files = load_or_train_tokenizer(
                [text for text, _ in splits.train], os.path.join(run_dir, 'tokenizer.spiece'),
                kobert_dir=config.kobert_dir, download=bert_size(config) == 'kobert',
                vocab_size=config.tokenizer_vocab_size)
        bert_config = bert_config_for(config, vocab)
    inputs = run_inputs(config, splits, tokenizer_files, bert_config)
    if engine.num_workers > 1:  # it sets the global batch: a resume with another count is refused
        inputs['workers'] = engine.num_workers
    label_map = splits.label_map
    if engine.is_root:
        if config.resume:
            rundir.check_inputs(run_dir, inputs)
        rundir.write_start(run_dir, settings, inputs, splits.record)
        label_map.save(os.path.join(run_dir, 'labels.json'))

    pad = not config.bucketing
    train_data = BERTDataset(splits.train, 0, 1, tokenizer, config.max_len, pad, False)
    test_data = BERTDataset(splits.test, 0, 1, tokenizer, config.max_len, pad, False)
    pad_id = vocab[vocab.padding_token]
    valid_loader = (make_loader(BERTDataset(splits.valid, 0, 1, tokenizer, config.max_len, pad, False),
                                config, False, pad_id, engine) if splits.valid else None)
    test_loader = make_loader(test_data, config, False, pad_id, engine)
    logger.info('train %d / validation %d / test %d sentences, %d classes %s, ctx %s, %d worker(s), '
                'run directory %s', len(splits.train), len(splits.valid), len(splits.test), len(label_map),
                label_map.names, ctx, engine.num_workers, run_dir)
    if not splits.valid:
        logger.info('no validation set (valid_size=0): best/ will be the last epoch, no model selection')

    precision.init_training(dtype)  # AMP rewrites operators, so it must precede the model
    model = prepare_model(config, bert_config, len(label_map), ctx, init_params)
    # Saved models carry the split's hashes, so `evaluate` can tell the test set from the rest.
    split_hashes = {name: {'rows': part['rows'], 'sha256': part['sha256']} for name, part in splits.record.items()}
    classifier = TextClassifier(model, tokenizer, label_map, bert_config, config.max_len, tokenizer_files,
                                config.dropout, ctx[0], training={'split': split_hashes})
    params = model.collect_params()
    exclude_from_weight_decay(params)
    # Every parameter is trained (none is frozen); gradients add up over the batches of a step
    # until they are zeroed after the update, which is how accumulation works. Under MXNet
    # 1.9.1's bf16 AMP 'add' gradients stay zero (global norm 0 at every step: the demo never
    # left chance), so bf16 runs, which validate() keeps at accumulate 1, write them instead.
    params.setattr('grad_req', 'write' if dtype == 'bfloat16' else 'add')
    trainable = list(params.values())
    trainer = engine.make_trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                       'epsilon': config.epsilon, 'wd': config.weight_decay})
    if dtype == 'float16':
        amp.init_trainer(trainer)  # dynamic loss scaling
    loss_function = gluon.loss.SoftmaxCELoss()

    steps_per_epoch = -(-len(make_loader(train_data, config, False, pad_id, engine)) // config.accumulate)
    # Each step's sentences on all ranks together (their shares differ by one at most).
    global_sizes = None if config.bucketing else global_batch_sizes(len(train_data), config.batch_size,
                                                                    engine.num_workers)
    num_train_steps = steps_per_epoch * config.num_epochs
    num_warmup_steps = int(num_train_steps * config.warmup_ratio)

    state = new_state()
    last_dir, best_dir = (os.path.join(run_dir, d) for d in ('last', 'best'))
    if config.resume:
        with root_first(engine):  # rank 0 repairs an interrupted checkpoint; the others then read it
            rundir.restore_interrupted(run_dir, 'best')
            newest = rundir.newest_checkpoint(run_dir, 'last')
        if newest:
            state = load_checkpoint(newest, model, trainer, ctx, config.allow_pickle_resume)
            logger.info('resuming %s after epoch %d, batch %d (step %d)', newest, state['epoch'],
                        state['batches_done'], state['step'])
        else:
            logger.warning('%s has no complete checkpoint yet: starting at epoch 1', run_dir)
    start(engine, model, trainer, config.max_len, ctx[0])

    for epoch in range(state['epoch'] + 1, config.num_epochs + 1):
        if state['stopped_early']:
            break
        # Seeding per epoch gives a resumed run exactly the batch order and dropout masks of an
        # uninterrupted one; batches trained before a mid-epoch checkpoint are skipped. Every
        # rank shuffles alike (and takes its share of each global batch); dropout masks differ.
        seed_everything(config.seed * 1000 + epoch)
        mx.random.seed(engine.rank_seed(config.seed * 1000 + epoch))
        train_loader = make_loader(train_data, config, True, pad_id, engine)
        skip = state['batches_done']
        # A mid-epoch checkpoint holds the totals of every rank: rank 0 carries them on.
        totals = (engine.is_root and state['epoch_totals']) or {'loss': 0.0, 'correct': 0, 'seen': 0, 'seconds': 0.0}
        started = time.time() - totals['seconds']
        progress = tqdm(total=len(train_loader), initial=skip, desc=f'epoch {epoch}/{config.num_epochs}',
                        leave=False, disable=None if engine.is_root else True)
        group_size = 0  # sentences whose gradients are summed in the parameters so far
        for batch_id, (token_ids, valid_length, segment_ids, label) in enumerate(train_loader):
            if batch_id < skip:
                if batch_id + 1 == skip:
                    mx.random.seed(engine.rank_seed(checkpoint_seed(config.seed, epoch, skip)))
                continue
            batch_size = label.shape[0]
            with mx.autograd.record():
                losses, logits = [], []
                for parts in zip(*(gluon.utils.split_and_load(a, ctx, even_split=False)
                                   for a in (token_ids, segment_ids, valid_length, label))):
                    out = model(*parts[:3])
                    losses.append(loss_function(out, parts[3]).sum())
                    logits.append(out)
            if dtype == 'float16':
                with amp.scale_loss(losses, trainer) as scaled:
                    mx.autograd.backward(scaled)
            else:
                mx.autograd.backward(losses)
            group_size += global_sizes[batch_id] if global_sizes else batch_size

            batch_loss = sum(l.asscalar() for l in losses) / batch_size
            # split_and_load keeps order, so the concatenated predictions line up with label.
            predicted = np.concatenate([o.argmax(axis=1).asnumpy() for o in logits])
            totals['loss'] += batch_loss * batch_size
            totals['correct'] += int((predicted == label.asnumpy()).sum())
            totals['seen'] += batch_size

            if (batch_id + 1) % config.accumulate == 0 or batch_id + 1 == len(train_loader):
                state['step'] += 1
                lr = learning_rate_at(state['step'], num_train_steps, num_warmup_steps, config.learning_rate)
                trainer.set_learning_rate(lr)
                optimizer_step(trainer, trainable, group_size, config.max_grad_norm, dtype)
                group_size = 0
                if config.save_every and state['step'] % config.save_every == 0 and batch_id + 1 < len(train_loader):
                    state['batches_done'] = batch_id + 1
                    state['epoch_totals'] = {**sum_over_ranks(engine, totals), 'seconds': time.time() - started}
                    if engine.is_root:
                        save_checkpoint(last_dir, classifier, trainer, state, settings)
                    mx.random.seed(engine.rank_seed(checkpoint_seed(config.seed, epoch, batch_id + 1)))

            state['history']['steps'].append({'step': state['step'], 'epoch': epoch,
                                              'loss': batch_loss, 'lr': trainer.learning_rate})
            progress.update(1)
            progress.set_postfix(loss=f'{batch_loss:.4f}', lr=f'{trainer.learning_rate:.2e}',
                                 acc=f"{totals['correct'] / totals['seen']:.4f}")
            if (batch_id + 1) % config.log_interval == 0:
                logger.info('epoch %d batch %d/%d loss %.4f lr %.3e acc %.4f', epoch, batch_id + 1,
                            len(train_loader), batch_loss, trainer.learning_rate, totals['correct'] / totals['seen'])
        progress.close()

        check_same_weights(engine, params)
        # Each rank evaluated its share of the rows: the reports add up their confusion matrices.
        valid_report = (aggregate_report(engine, evaluate(model, valid_loader, ctx, len(label_map), 'validating'))
                        if valid_loader else None)
        test_report = aggregate_report(engine, evaluate(model, test_loader, ctx, len(label_map), 'testing'))
        totals = sum_over_ranks(engine, totals)
        seconds = time.time() - started
        state['history']['epochs'].append({'epoch': epoch, 'train_loss': totals['loss'] / totals['seen'],
                                           'train_accuracy': totals['correct'] / totals['seen'],
                                           'seconds': seconds, 'valid': valid_report, 'test': test_report})
        logger.info('epoch %d: train loss %.4f acc %.4f, %.1f s | validation %s | test accuracy %.4f '
                    'macro-F1 %.4f\n%s', epoch, totals['loss'] / totals['seen'], totals['correct'] / totals['seen'],
                    seconds, _summary(valid_report), test_report['accuracy'], test_report['macro_f1'],
                    format_report(test_report, label_map.names))
        state.update(epoch=epoch, batches_done=0, epoch_totals=None)
        if improved(valid_report, state['best'], config.select_metric):
            if engine.is_root:
                classifier.save(best_dir)
            state['best'] = {'epoch': epoch, 'metric': config.select_metric if valid_report else None,
                             'value': valid_report[config.select_metric] if valid_report else None}
            state['epochs_without_improvement'] = 0
        else:
            state['epochs_without_improvement'] += 1
        if config.early_stopping and state['epochs_without_improvement'] >= config.early_stopping:
            state['stopped_early'] = epoch
            logger.info('early stopping after epoch %d: no validation %s improvement for %d epochs',
                        epoch, config.select_metric, config.early_stopping)
        if engine.is_root:
            save_checkpoint(last_dir, classifier, trainer, state, settings)
            write_plots(state['history'], run_dir, label_map.names)

    classifier.history, classifier.run_dir, classifier.test_report = state['history'], run_dir, None
    if not engine.is_root:  # rank 0 alone tests the selected model: its weights are in its best/
        return classifier
    model.load_parameters(os.path.join(best_dir, 'model.params'), ctx=ctx)
    report = evaluate(model, make_loader(test_data, config, False, pad_id), ctx, len(label_map),
                      'testing the selected model')
    selection = state['best']
    write_json(os.path.join(run_dir, TEST_REPORT), {
        'evaluated': 'once, on the selected model (best/); the test set was not used for selection',
        'selected_epoch': selection['epoch'], 'select_metric': selection['metric'],
        'validation_value': selection['value'], 'test_rows': len(splits.test), **report})
    if selection['metric']:
        logger.info('selected epoch %d by validation %s %.4f; test accuracy of the selected model %.4f '
                    '(macro-F1 %.4f), saved in %s\n%s', selection['epoch'], selection['metric'], selection['value'],
                    report['accuracy'], report['macro_f1'], best_dir, format_report(report, label_map.names))
    else:
        logger.info('no validation set, so no selection: kept the last epoch (%d); its test accuracy %.4f '
                    '(macro-F1 %.4f), saved in %s\n%s', selection['epoch'], report['accuracy'], report['macro_f1'],
                    best_dir, format_report(report, label_map.names))
    classifier.test_report = report
    return classifier


def _summary(report):
    if report is None:
        return 'none'
    return f"accuracy {report['accuracy']:.4f} macro-F1 {report['macro_f1']:.4f}"


def write_plots(history, run_dir, label_names):
    plot_training(history, run_dir, label_names)
