"""Fine-tuning a BERTClassifier: KoBERT's notebook recipe, readable top to bottom in train().

The recipe: bertadam (epsilon 1e-9, wd 0.01, none on LayerNorm or biases), linear warmup then
linear decay, global-norm clipping, optional gradient accumulation, softmax cross-entropy;
every epoch evaluated on the whole test set, checkpointed atomically, resumable.
"""
import dataclasses
import logging
import os
import random
import time
from importlib import resources
from typing import Optional

import gluonnlp as nlp
import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp
from tqdm.auto import tqdm

from . import assets, precision
from .distributed import ENGINES, Engine, aggregate_report, check_same_weights, create_engine, root_first, shard_batches, start
from .context import parse_ctx
from .data import BERTDataset, DataError, LabelMap, read_table, stratified_split
from .fileio import atomic_directory, read_json, write_json
from .metrics import format_report
from .model import MAX_POSITIONS, BertConfig, build_classifier
from .pipeline import TextClassifier
from .tokenizer import get_bert_tokenizer, get_vocab, train_sentencepiece

logger = logging.getLogger(__name__)

DEMO_DATA = 'demo_sentiment.tsv'
BERT_SIZES = ('auto', 'kobert', 'small')
DTYPES = ('float32', 'bfloat16', 'float16')


def field(default, help):
    return dataclasses.field(default=default, metadata={'help': help})


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a fine-tuning run; the CLI's flags are these field names."""
    data: Optional[str] = field(None, 'labeled TSV/CSV/XLSX file; none: the embedded Korean demo set')
    text_column: str = field('text', 'column holding the sentences')
    label_column: str = field('label', 'column holding the labels (names or integers)')
    test_data: Optional[str] = field(None, 'separate test file; none: a stratified split of --data')
    test_size: float = field(0.2, 'share of --data held out for testing when there is no --test-data')
    num_classes: Optional[int] = field(None, 'expected number of classes; checked against the labels')
    init_from: Optional[str] = field(None, 'pretrained BERT params file (bert_12_768_12 layout) to start from, '
                                           "instead of KoBERT's own")
    kobert_dir: Optional[str] = field(None, 'directory holding the KoBERT files (else KOBERT_HOME, the cache, a download)')
    bert: str = field('auto', "'kobert' (12 layers, pretrained), 'small' (2 layers, from scratch), or 'auto': kobert when --data is given")
    max_len: int = field(64, 'tokens per sentence, [CLS] and [SEP] included')
    batch_size: int = field(64, 'sentences per optimizer step (before accumulation) on each worker')
    num_epochs: int = field(5, 'passes over the training set')
    learning_rate: float = field(5e-5, 'peak learning rate')
    warmup_ratio: float = field(0.1, 'share of steps with linearly rising learning rate')
    weight_decay: float = field(0.01, 'bertadam weight decay (not on LayerNorm or biases)')
    epsilon: float = field(1e-9, 'bertadam epsilon')
    max_grad_norm: float = field(1.0, 'global gradient norm clip')
    accumulate: int = field(1, 'batches whose gradients add up to one step')
    dropout: float = field(0.1, 'dropout before the classifier head')
    log_interval: int = field(200, 'batches between log lines')
    seed: int = field(42, 'seed for the split, shuffling, dropout and initialisation')
    ctx: str = field('auto', "'auto', 'cpu', 'gpu' or 'gpu:0,1'")
    dtype: str = field('float32', "'float32', 'bfloat16' (CPU AMP) or 'float16' (GPU AMP)")
    bucketing: bool = field(False, 'batch sentences of similar length, padded per batch')
    tokenizer_vocab_size: int = field(3000, 'pieces of a tokenizer trained on --data when KoBERT files are absent')
    output_dir: str = field('runs/kobert-classifier', 'run directory: checkpoints, best/ and last/ models, plots')
    resume: bool = field(False, 'continue from output_dir/last')
    distributed: str = field('none', "'none', 'horovod' (under horovodrun) or 'dist_sync' (under kobert-gluon "
                                     "launch); the global batch is batch_size x workers x accumulate")

    @classmethod
    def demo(cls, **overrides):
        """The embedded default: a small BERT learns the demo set in a few minutes on 2 cores."""
        return cls(**{'bert': 'small', 'batch_size': 32, 'num_epochs': 8, 'learning_rate': 5e-4,
                      'log_interval': 5, 'output_dir': 'runs/demo', **overrides})

    def validate(self):
        if not 2 <= self.max_len <= MAX_POSITIONS:
            raise ValueError(f'max_len={self.max_len}: must be between 2 and {MAX_POSITIONS}')
        for name in ('batch_size', 'num_epochs', 'accumulate', 'log_interval'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name}={getattr(self, name)}: must be at least 1')
        if self.bert not in BERT_SIZES:
            raise ValueError(f'bert={self.bert!r}: expected one of {BERT_SIZES}')
        if self.dtype not in DTYPES:
            raise ValueError(f'dtype={self.dtype!r}: expected one of {DTYPES} for training')
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f'warmup_ratio={self.warmup_ratio}: must be in [0, 1)')
        if self.distributed not in ENGINES:
            raise ValueError(f'distributed={self.distributed!r}: expected one of {ENGINES}')
        if self.distributed != 'none' and self.bucketing:
            raise ValueError('bucketing is not available with --distributed (each rank must take the same '
                             'number of batches)')


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


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


# ---------------------------------------------------------------------------- data

def load_splits(config):
    """(train rows, test rows, LabelMap); each row is (text, label id)."""
    path = config.data or str(resources.files(__package__).joinpath('resources', DEMO_DATA))
    frame = read_table(path, config.text_column, config.label_column)
    if config.test_data:
        test = read_table(config.test_data, config.text_column, config.label_column)
        train = frame
    else:
        train, test = stratified_split(frame, config.label_column, config.test_size, config.seed)
    label_map = LabelMap.from_values(list(train[config.label_column]) + list(test[config.label_column]))
    if config.num_classes is not None and len(label_map) > config.num_classes:
        raise DataError(f'{path}: {len(label_map)} distinct labels {label_map.names} but '
                        f'num_classes={config.num_classes}')

    def rows(part, source):
        return list(zip(part[config.text_column], label_map.encode(part[config.label_column], source)))
    return rows(train, path), rows(test, config.test_data or path), label_map


def prepare_tokenizer(config, train_rows):
    """KoBERT's tokenizer (fetched if need be for the 12-layer KoBERT), else when its files are
    not found for a small BERT, one trained on the training sentences."""
    kobert = bert_size(config) == 'kobert'
    try:
        spiece = assets.resolve('spiece', kobert_dir=config.kobert_dir, download=kobert)
    except assets.AssetNotFoundError:
        if kobert:
            raise
        spiece = os.path.join(config.output_dir, 'tokenizer.spiece')
        if not (config.resume and os.path.isfile(spiece)):
            train_sentencepiece([text for text, _ in train_rows], spiece, config.tokenizer_vocab_size)
        logger.info('KoBERT tokenizer files not found; using a tokenizer trained on the training data')
    vocab = get_vocab(spiece)
    return get_bert_tokenizer(spiece, vocab), vocab, {'tokenizer': spiece}


def make_loader(dataset, config, pad_id, engine, seed=None):
    """This rank's batches, shuffled from ``seed`` (None: in file order), and each step's
    global batch size (the sentences of all ranks together)."""
    if not config.bucketing:
        plan = shard_batches(len(dataset), config.batch_size, engine.rank, engine.num_workers, seed)
        return (gluon.data.DataLoader(dataset, batch_sampler=[indices for indices, _ in plan]),
                [global_size for _, global_size in plan])
    lengths = [int(item[1]) for item in dataset]  # one process only: TrainConfig.validate
    sampler = nlp.data.FixedBucketSampler(lengths, batch_size=config.batch_size, num_buckets=10,
                                          ratio=0, shuffle=seed is not None)
    if seed is not None:
        np.random.seed(seed)  # the sampler shuffles with numpy's global generator
    batches = list(sampler)
    # Rounding widths to a multiple of 8 bounds how many shapes the graph is built for.
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=pad_id, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'),
                                       nlp.data.batchify.Pad(axis=0, pad_val=0, dtype='int32', round_to=8),
                                       nlp.data.batchify.Stack('int32'))
    return gluon.data.DataLoader(dataset, batch_sampler=batches, batchify_fn=batchify), [len(b) for b in batches]


# ---------------------------------------------------------------------------- model

def bert_size(config):
    return 'kobert' if config.bert == 'kobert' or (config.bert == 'auto' and config.data) else 'small'


def prepare_model(config, vocab, num_classes, ctx):
    if bert_size(config) == 'kobert':
        bert_config = BertConfig.kobert()
        pretrained = config.init_from or assets.resolve('mxnet_params', kobert_dir=config.kobert_dir)
    else:
        bert_config, pretrained = BertConfig.small(vocab_size=len(vocab)), config.init_from
    if len(vocab) != bert_config.vocab_size:
        raise ValueError(f'the tokenizer has {len(vocab)} pieces, the model {bert_config.vocab_size}')
    model = build_classifier(bert_config, num_classes, config.dropout, ctx, bert_params=pretrained)
    model.hybridize(static_alloc=True, static_shape=not config.bucketing)
    return model, bert_config


def evaluate(model, loader, ctx, num_classes, engine=None):
    """Report over the whole ``loader`` (every batch, not a sample), and over every rank's."""
    labels, predictions = [], []
    for token_ids, valid_length, segment_ids, label in loader:
        logits = forward(model, token_ids, segment_ids, valid_length, ctx[0])
        predictions.append(logits.argmax(axis=1).astype('int32').asnumpy())
        labels.append(label.asnumpy())
    return aggregate_report(engine or Engine(), np.concatenate(labels), np.concatenate(predictions), num_classes)


def forward(model, token_ids, segment_ids, valid_length, ctx):
    return model(token_ids.as_in_context(ctx), segment_ids.as_in_context(ctx), valid_length.as_in_context(ctx))


# ---------------------------------------------------------------------------- checkpoints

def save_checkpoint(directory, classifier, trainer, state):
    """``last/``: a loadable model directory plus what --resume needs, written atomically."""
    with atomic_directory(directory) as tmp:
        classifier.save(os.path.join(tmp, 'model'))
        trainer.save_states(os.path.join(tmp, 'trainer.states'))
        write_json(os.path.join(tmp, 'state.json'), state)


def load_checkpoint(directory, model, trainer, ctx):
    model.load_parameters(os.path.join(directory, 'model', 'model.params'), ctx=ctx)
    trainer.load_states(os.path.join(directory, 'trainer.states'))
    return read_json(os.path.join(directory, 'state.json'))


# ---------------------------------------------------------------------------- the recipe

def train(config):
    """Fine-tune a BERTClassifier as configured; returns the best epoch's model (also in best/)."""
    config.validate()
    engine = create_engine(config.distributed)  # only its rank 0 logs and writes files
    ctx = engine.devices(parse_ctx(config.ctx))  # fail on a missing GPU before any work
    dtype = precision.resolve(config.dtype, ctx[0], training=True)
    os.makedirs(config.output_dir, exist_ok=True)
    seed_everything(config.seed)

    train_rows, test_rows, label_map = load_splits(config)
    with root_first(engine):  # a tokenizer trained into the run directory is trained once
        tokenizer, vocab, tokenizer_files = prepare_tokenizer(
            config if engine.is_root else dataclasses.replace(config, resume=True), train_rows)
    train_data = BERTDataset(train_rows, 0, 1, tokenizer, config.max_len, not config.bucketing, False)
    test_data = BERTDataset(test_rows, 0, 1, tokenizer, config.max_len, not config.bucketing, False)
    pad_id = vocab[vocab.padding_token]
    test_loader, _ = make_loader(test_data, config, pad_id, engine)
    if engine.is_root:
        label_map.save(os.path.join(config.output_dir, 'labels.json'))
    logger.info('train %d / test %d sentences, %d classes %s, ctx %s, %d worker(s)',
                len(train_data), len(test_data), len(label_map), label_map.names, ctx, engine.num_workers)

    precision.init_training(dtype)  # AMP rewrites operators, so it must precede the model
    model, bert_config = prepare_model(config, vocab, len(label_map), ctx)
    classifier = TextClassifier(model, tokenizer, label_map, bert_config, config.max_len,
                                tokenizer_files, config.dropout, ctx[0])
    params = model.collect_params()
    exclude_from_weight_decay(params)
    params.setattr('grad_req', 'add')  # gradients accumulate until we zero them after a step
    trainable = [p for p in params.values() if p.grad_req != 'null']
    trainer = engine.make_trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                       'epsilon': config.epsilon, 'wd': config.weight_decay})
    if dtype == 'float16':
        amp.init_trainer(trainer)  # dynamic loss scaling
    loss_function = gluon.loss.SoftmaxCELoss()

    steps_per_epoch = -(-len(make_loader(train_data, config, pad_id, engine, config.seed)[1]) // config.accumulate)
    num_train_steps = steps_per_epoch * config.num_epochs
    num_warmup_steps = int(num_train_steps * config.warmup_ratio)

    state = {'epoch': 0, 'step': 0, 'best_accuracy': -1.0, 'history': {'steps': [], 'epochs': []}}
    last_dir, best_dir = (os.path.join(config.output_dir, d) for d in ('last', 'best'))
    if config.resume and os.path.isfile(os.path.join(last_dir, 'state.json')):
        state = load_checkpoint(last_dir, model, trainer, ctx)
        logger.info('resuming %s after epoch %d (step %d)', last_dir, state['epoch'], state['step'])
    start(engine, model, trainer, config.max_len, ctx[0])

    for epoch in range(state['epoch'] + 1, config.num_epochs + 1):
        # Seeding per epoch makes a resumed run draw exactly the batches and dropout masks
        # that an uninterrupted one would have.
        # Every rank shuffles with the same seed (each takes its share of every global batch);
        # dropout masks differ between ranks.
        seed_everything(engine.rank_seed(config.seed * 1000 + epoch))
        train_loader, global_sizes = make_loader(train_data, config, pad_id, engine, config.seed * 1000 + epoch)
        epoch_loss, correct, seen, started = 0.0, 0, 0, time.time()
        progress = tqdm(train_loader, desc=f'epoch {epoch}/{config.num_epochs}', leave=False,
                        disable=not engine.is_root)
        group_size = 0  # sentences whose gradients are summed in the parameters so far
        for batch_id, (token_ids, valid_length, segment_ids, label) in enumerate(progress):
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
            group_size += global_sizes[batch_id]  # what every rank together adds

            if (batch_id + 1) % config.accumulate == 0 or batch_id + 1 == len(train_loader):
                state['step'] += 1
                lr = learning_rate_at(state['step'], num_train_steps, num_warmup_steps, config.learning_rate)
                trainer.set_learning_rate(lr)
                trainer.allreduce_grads()
                if dtype == 'float16':
                    amp.unscale(trainer)  # clip the true gradients, not the loss-scaled ones
                # Gradients are sums over group_size sentences (of every rank): clipping the sum at
                # max_norm * group_size clips the mean gradient at max_norm, and update()
                # divides by group_size, so k accumulated batches of b equal one batch of k*b.
                nlp.utils.clip_grad_global_norm(trainable, config.max_grad_norm * group_size)
                trainer.update(group_size)
                for p in trainable:
                    p.zero_grad()
                group_size = 0

            batch_loss = sum(l.asscalar() for l in losses) / batch_size
            epoch_loss += batch_loss * batch_size
            # split_and_load keeps order, so the concatenated predictions line up with label.
            predicted = np.concatenate([o.argmax(axis=1).asnumpy() for o in logits])
            correct += int((predicted == label.asnumpy()).sum())
            seen += batch_size
            state['history']['steps'].append({'step': state['step'], 'epoch': epoch,
                                              'loss': batch_loss, 'lr': trainer.learning_rate})
            progress.set_postfix(loss=f'{batch_loss:.4f}', lr=f'{trainer.learning_rate:.2e}',
                                 acc=f'{correct / seen:.4f}')
            if (batch_id + 1) % config.log_interval == 0:
                logger.info('epoch %d batch %d/%d loss %.4f lr %.3e acc %.4f', epoch, batch_id + 1,
                            len(train_loader), batch_loss, trainer.learning_rate, correct / seen)

        check_same_weights(engine, params)
        report = evaluate(model, test_loader, ctx, len(label_map), engine)
        epoch_loss, correct, seen = engine.allreduce_sum('train_totals', [epoch_loss, correct, seen])
        state['history']['epochs'].append({'epoch': epoch, 'train_loss': epoch_loss / seen,
                                           'train_accuracy': correct / seen, 'seconds': time.time() - started,
                                           'test': report})
        logger.info('epoch %d: train loss %.4f acc %.4f, %.1f s; test\n%s', epoch, epoch_loss / seen,
                    correct / seen, time.time() - started, format_report(report, label_map.names))
        state['epoch'] = epoch
        new_best = report['accuracy'] > state['best_accuracy']
        state['best_accuracy'] = max(report['accuracy'], state['best_accuracy'])
        if engine.is_root:
            if new_best:
                classifier.save(best_dir)
            save_checkpoint(last_dir, classifier, trainer, state)
            write_plots(state['history'], config.output_dir, label_map.names)

    if engine.is_root:  # the other ranks return the last epoch's weights
        write_json(os.path.join(config.output_dir, 'train_config.json'), dataclasses.asdict(config))
        model.load_parameters(os.path.join(best_dir, 'model.params'), ctx=ctx)
    logger.info('best test accuracy %.4f; model saved in %s', state['best_accuracy'], best_dir)
    classifier.history = state['history']
    return classifier


def write_plots(history, run_dir, label_names):
    try:
        from .plots import plot_training
    except ImportError as error:  # matplotlib is optional at run time
        logger.warning('plots skipped: %s', error)
        return
    plot_training(history, run_dir, label_names)
