"""Masked-LM (and next-sentence) pretraining of a BERT on a plain-text corpus.

KoBERT's weights came from BERT's two pretraining tasks; SKT did not release that code. This
is BERT's recipe on gluonnlp's ``BERTModel(use_decoder=True, use_classifier=True)``: 15% of the
non-special tokens are chosen for prediction (optionally whole words, grouped by SentencePiece's
``▁`` word starts), 80% of them become [MASK], 10% a random token, 10% stay as they are;
with ``next_sentence`` the corpus is documents separated by blank lines and half the sentence
pairs get a random second sentence. Optimisation is the fine-tuning recipe's: bertadam, linear
warmup and decay, global-norm clipping.

A run directory ends up holding::

    bert.params       the BERT in bert_12_768_12 layout (with MLM decoder and NSP classifier):
                      feeds ``kobert-gluon train --init_from`` and ``get_mxnet_kobert_model(model_file=...)``
    tokenizer/        the SentencePiece model it was trained with
    pretrain.json     how it was made: settings, corpus md5, steps, time, loss, md5s
    generator.params  --objective electra only: the generator and RTD head (:mod:`.electra`)
    last/             the checkpoint ``--resume`` continues from
"""
import dataclasses
import logging
import os
import shlex
import shutil
import time

import mxnet as mx
import numpy as np
from mxnet import gluon
from tqdm.auto import tqdm

from .. import arguments as _arg
from .. import assets
from .._version import __version__
from ..device import parse_ctx
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_path, write_json
from ..models.bert import build_bert
from ..models.config import bert_config_for
from ..models.params import load_params, parameter_aliases, save_bert_params
from ..models.pretrained import PARAMS_FILE, RECORD_FILE, RECORD_FORMAT
from ..text.corpus import corpus_fingerprint, sample_lines
from ..text.tokenizer import get_vocab, train_sentencepiece
from ..text.vocab import TOKENIZER_DIR
from . import checkpoint, electra, rundir
from .config import SIZE_FLAGS, TOKENIZER_CHOICES, PretrainConfig
from .interrupt import InterruptGuard, TrainingInterrupted, resume_command
from .masking import BatchStream, word_start_table
from .optim import exclude_from_weight_decay, learning_rate_at, pretraining_update

logger = logging.getLogger(__name__)

TRAINED_TOKENIZER = 'tokenizer.spiece'


# ---------------------------------------------------------------------------- masking


# ---------------------------------------------------------------------------- examples and batches


# ---------------------------------------------------------------------------- model, tokenizer, files

def prepare_tokenizer(config):
    """Path of the .spiece file the run uses (trained into output_dir/tokenizer/ if need be)."""
    if config.tokenizer not in TOKENIZER_CHOICES:
        return config.tokenizer
    if config.tokenizer != 'train':
        needs_kobert = config.tokenizer == 'kobert' or config.bert == 'kobert' or bool(config.init_from)
        try:
            return assets.resolve('spiece', kobert_dir=config.kobert_dir, download=needs_kobert)
        except assets.AssetNotFoundError:
            if needs_kobert:
                raise
    path = os.path.join(config.output_dir, TOKENIZER_DIR, TRAINED_TOKENIZER)
    if not (config.resume and os.path.isfile(path)):
        logger.info('training a %d-piece tokenizer on the first %d lines of %s',
                    config.tokenizer_vocab_size, config.tokenizer_sentences, config.corpus)
        train_sentencepiece(sample_lines(config.corpus, config.tokenizer_sentences), path,
                            config.tokenizer_vocab_size)
    return path


def build_pretraining_model(bert_config, ctx, init_from=None):
    """BERTModel with pooler, MLM decoder and NSP classifier; from ``init_from`` when given.

    A file without the decoder or classifier (a fine-tuning encoder) still loads: those
    heads start from Normal(0.02), which is logged. A file missing encoder weights is refused.
    """
    model = build_bert(bert_config, use_pooler=True, use_decoder=True, use_classifier=True)
    model.initialize(init=mx.init.Normal(0.02), ctx=ctx)
    # Some shapes are only inferred on a first forward pass; a 0-step run saves right away.
    model(mx.nd.array([[2, 3]], ctx=ctx), mx.nd.zeros((1, 2), ctx=ctx), mx.nd.array([2], ctx=ctx),
          mx.nd.zeros((1, 1), ctx=ctx))
    if init_from:
        saved = set(mx.nd.load(init_from))
        missing = [aliases[0] for _, aliases in parameter_aliases(model) if not saved.intersection(aliases)]
        heads = ('decoder.', 'classifier.', 'pooler.')
        if [name for name in missing if not name.startswith(heads)]:
            raise ConfigError(f'{init_from}: not a BERT of this size in bert_12_768_12 layout '
                              f'(missing {missing[:3]})')
        if missing:
            logger.info('%s has no %s: they start from random weights', init_from, missing)
        load_params(model, init_from, ctx, ignore_extra=True, allow_missing=bool(missing))
    return model


# ---------------------------------------------------------------------------- checkpoints

def save_checkpoint(directory, model, trainer, state, extras=None):
    """``last/``: the weights (ELECTRA: the generator too), optimizer state and where the corpus was left."""
    def write_weights(tmp):
        save_bert_params(model, os.path.join(tmp, PARAMS_FILE))
        if extras is not None:
            electra.save_extras(extras, model, os.path.join(tmp, electra.GENERATOR_FILE))
    checkpoint.save_checkpoint(directory, trainer, state, write_weights)


def load_checkpoint(directory, model, trainer, ctx, extras=None):
    def load_weights(checkpoint_dir):
        load_params(model, os.path.join(checkpoint_dir, PARAMS_FILE), ctx)
        if extras is not None:
            electra.load_extras(extras, model, os.path.join(checkpoint_dir, electra.GENERATOR_FILE), ctx)
    return checkpoint.load_checkpoint(directory, trainer, load_weights, required=('position', 'step'))


def trainable_parameters(config, model, extras):
    """All parameters of the run (ELECTRA: the generator and RTD head too) and the trained ones.

    Heads that get no gradient are frozen (grad_req 'null'), so weight decay leaves them as they
    were: the pooler and NSP classifier without a pair objective, and under ELECTRA the BERT's MLM decoder."""
    params = model.collect_params()
    if extras is not None:
        params.update(extras.collect_params())  # the shared embeddings: the same Parameter objects
    exclude_from_weight_decay(params)
    frozen = [] if extras is None else electra.frozen_decoder(model)
    if not (config.next_sentence or config.sentence_order):
        frozen += [param for name, param in params.items() if '_pooler_' in name or '_classifier_' in name]
    for param in frozen:
        param.grad_req = 'null'
    return params, [p for p in params.values() if p.grad_req != 'null']


# ---------------------------------------------------------------------------- the recipe

def pretrain(config, command=None):
    """Run the configured pretraining; returns the path of the saved bert.params.

    The run directory is protected as in fine-tuning: one run at a time, never overwritten
    without --resume or --overwrite."""
    _arg.instance('pretrain', 'config', config, PretrainConfig, 'a PretrainConfig (PretrainConfig(**settings))')
    config.validate()
    ctx = parse_ctx(config.ctx)[0]
    config = dataclasses.replace(config, output_dir=config.output_dir or rundir.unique_run_dir('pretrain'))
    with rundir.locked(config.output_dir):
        rundir.prepare(config.output_dir, config.resume, config.overwrite)
        if not config.resume:  # what --resume (and --config) reads back
            write_json(os.path.join(config.output_dir, checkpoint.PRETRAIN_CONFIG_FILE),
                       {**dataclasses.asdict(config), 'resume': False, 'overwrite': False})
        return _pretrain(config, ctx, command)


def _pretrain(config, ctx, command):
    tokenizer_path = prepare_tokenizer(config)
    vocab = get_vocab(tokenizer_path)
    bert_config = bert_config_for(config.bert, len(vocab), config.max_len, **{name: getattr(config, name) for name in SIZE_FLAGS})
    mx.random.seed(config.seed)
    model = build_pretraining_model(bert_config, ctx, config.init_from)
    model.hybridize(static_alloc=True)
    extras = electra.build_extras(config, model, bert_config, ctx) if config.objective == 'electra' else None
    if extras is not None:
        extras.generator.hybridize(static_alloc=True)
        extras.rtd.hybridize(static_alloc=True)
    params, trainable = trainable_parameters(config, model, extras)
    trainer = gluon.Trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                 'epsilon': config.epsilon, 'wd': config.weight_decay},
                            update_on_kvstore=False)
    num_warmup_steps = int(config.num_steps * config.warmup_ratio)
    loss_function = gluon.loss.SoftmaxCELoss()

    last_dir = os.path.join(config.output_dir, 'last')
    state = {'step': 0, 'seconds': 0.0, 'cpu_seconds': 0.0, 'history': [], 'corpus_md5': corpus_fingerprint(config.corpus)['md5'],
             'position': {'epoch': 0, 'offset': 0, 'unit': 0, 'file': 0, 'batch': 0}}
    # The newest complete checkpoint, also after a crash while last/ was being replaced.
    newest = checkpoint.newest_checkpoint(config.output_dir, 'last') if config.resume else None
    if newest:
        state = {'cpu_seconds': 0.0, **load_checkpoint(newest, model, trainer, ctx, extras), 'corpus_md5': check_corpus_unchanged(
            config, newest, state['corpus_md5'])}
        logger.info('resuming %s at step %d', newest, state['step'])

    word_starts = word_start_table(vocab) if config.whole_word_mask else None
    stream = BatchStream(config, tokenizer_path, vocab, word_starts)(state['position'])
    progress = tqdm(total=config.num_steps, initial=state['step'], desc='pretraining', disable=None)
    run = Run(config, ctx, model, trainer, trainable, loss_function, num_warmup_steps, last_dir, state['step'], extras)
    try:
        with InterruptGuard() as guard:
            train_steps(run, stream, state, progress, guard)
    except KeyboardInterrupt as interrupt:
        raise interrupted(run, state) from interrupt
    finally:
        stream.close()  # stops the tokenizer workers
        progress.close()
    return save_result(config, (model, extras), bert_config, tokenizer_path, state, command)


@dataclasses.dataclass
class Run:
    """What the steps of one pretraining run share."""
    config: PretrainConfig
    ctx: object
    model: object
    trainer: object
    trainable: list
    loss_function: object
    num_warmup_steps: int
    last_dir: str
    saved_step: int  # the step of the newest save of last/ (begun, or loaded on --resume)
    extras: object = None  # ELECTRA's generator and RTD head (models.electra.ElectraExtras)

    def out_of_cpu(self, state):
        return bool(self.config.max_cpu_seconds) and state['cpu_seconds'] >= self.config.max_cpu_seconds


def train_steps(run, stream, state, progress, guard):
    """Steps until ``num_steps``. Ctrl-C or SIGTERM lets the current step finish (``guard``), so
    ``state`` is always that of a completed step; :func:`interrupted` saves it."""
    config, started, window = run.config, time.time() - state['seconds'], []
    cpu_started = time.process_time() - state['cpu_seconds']  # this process's CPU time, all its threads
    while state['step'] < config.num_steps and not run.out_of_cpu(state):
        batch, position = next(stream)
        with guard.deferred():
            # Dropout drawn per step, so a resumed run repeats the uninterrupted one's masks.
            mx.random.seed(config.seed * 1_000_003 + state['step'])
            rate = learning_rate_at(state['step'], config.num_steps, run.num_warmup_steps, config.learning_rate)
            if run.extras is None:
                losses = train_step(run.model, run.trainer, run.trainable, run.loss_function, batch, run.ctx, config,
                                    rate, state['step'] + 1)
            else:
                losses = electra.train_step(run, batch, rate, state['step'] + 1)
            state['step'] += 1
            state['position'] = position
            state['seconds'], state['cpu_seconds'] = time.time() - started, time.process_time() - cpu_started
            last = state['step'] == config.num_steps or run.out_of_cpu(state)
            window.append(losses)
            progress.update(1)
            progress.set_postfix(mlm=f'{losses[0]:.3f}', lr=f'{run.trainer.learning_rate:.2e}')
            if state['step'] % config.log_interval == 0 or last:
                log_step(run, state, window, position)
                window = []
            if state['step'] % config.save_every == 0 or last:
                # Set first: a save cut short (a second Ctrl-C does not wait) is not saved again on the way out.
                run.saved_step = state['step']
                save_checkpoint(run.last_dir, run.model, run.trainer, state, run.extras)


# What a step returns, in order: MLM (under ELECTRA the generator's) and pair loss, then ELECTRA's figures.
STEP_FIGURES = ('mlm_loss', 'nsp_loss', 'rtd_loss', 'rtd_accuracy', 'replaced_share')


def log_step(run, state, window, position):
    figures = dict(zip(STEP_FIGURES, (float(value) for value in np.mean(window, axis=0))))
    state['history'].append({'step': state['step'], **figures, 'lr': run.trainer.learning_rate,
                             'epoch': position['epoch'], 'cpu_seconds': round(state['cpu_seconds'], 1)})
    logger.info('step %d/%d %s lr %.3e', state['step'], run.config.num_steps,
                ' '.join(f'{name} {value:.4f}' for name, value in figures.items()), run.trainer.learning_rate)


def interrupted(run, state):
    """After Ctrl-C or SIGTERM: the steps done since the last checkpoint are saved in last/, and
    the TrainingInterrupted says so and how to continue."""
    resume = resume_command(run.config.output_dir, 'pretrain')
    if state['step'] > run.saved_step:
        save_checkpoint(run.last_dir, run.model, run.trainer, state, run.extras)
        logger.info('interrupted: saved a checkpoint in %s (step %d)', run.last_dir, state['step'])
        return TrainingInterrupted(f"saved a checkpoint in {run.last_dir} (step {state['step']})", resume, run.last_dir)
    if state['step']:
        return TrainingInterrupted(f"the newest checkpoint is {run.last_dir} (step {state['step']})", resume,
                                   run.last_dir)
    return TrainingInterrupted('no step was done yet: --resume starts again at step 0', resume)


def check_corpus_unchanged(config, checkpoint_dir, corpus_md5):
    """A resumed run reads its corpus from where it stopped: another corpus would be read from
    a position that means nothing in it. Refused unless --allow_corpus_change."""
    recorded = checkpoint.read_state(checkpoint_dir).get('corpus_md5')
    if recorded is not None and recorded != corpus_md5:
        if not config.allow_corpus_change:
            raise CheckpointError(f'--resume refused: {config.corpus} is not the corpus this run was started with '
                                  f'(md5 {corpus_md5}, recorded {recorded} in {checkpoint_dir}); resume with the same '
                                  'corpus, or pass --allow_corpus_change to continue on this one from the same position')
        logger.warning('--allow_corpus_change: continuing on %s (md5 %s, the run began on md5 %s)',
                       config.corpus, corpus_md5, recorded)
    return corpus_md5


def train_step(model, trainer, trainable, loss_function, batch, ctx, config, learning_rate, step=None):
    """One optimizer step; returns (MLM loss, pair loss) of the batch."""
    inputs = {name: mx.nd.array(array, ctx=ctx, dtype=array.dtype) for name, array in batch.items()}
    with mx.autograd.record():
        _, _, nsp_logits, mlm_logits = model(inputs['token_ids'], inputs['segment_ids'],
                                             inputs['valid_length'], inputs['masked_positions'])
        weights = inputs['masked_weights'].reshape((-1, 1))
        mlm_loss = (loss_function(mlm_logits.reshape((-1, mlm_logits.shape[-1])),
                                  inputs['masked_ids'].reshape((-1,)), weights).sum()
                    / mx.nd.maximum(weights.sum(), 1))
        nsp_loss = electra.pair_loss(config, loss_function, nsp_logits, inputs['next_sentence'])
        loss = mlm_loss if nsp_loss is None else mlm_loss + nsp_loss
    pretraining_update(trainer, trainable, loss, learning_rate, config.max_grad_norm, step)
    return mlm_loss.asscalar(), 0.0 if nsp_loss is None else nsp_loss.asscalar()


def save_result(config, models, bert_config, tokenizer_path, state, command):
    """bert.params (ELECTRA: the discriminator; generator.params beside it) + tokenizer/ + pretrain.json."""
    (model, extras), params_path = models, os.path.join(config.output_dir, PARAMS_FILE)
    save_bert_params(model, params_path, config.save_dtype)
    generator = None
    if extras is not None:
        generator_path = os.path.join(config.output_dir, electra.GENERATOR_FILE)
        electra.save_extras(extras, model, generator_path)
        generator = {'file': electra.GENERATOR_FILE, 'md5': assets.md5sum(generator_path),
                     'size': config.generator_size, 'rtd_weight': config.rtd_weight}
    tokenizer_copy = os.path.join(config.output_dir, TOKENIZER_DIR, os.path.basename(tokenizer_path))
    if os.path.abspath(tokenizer_copy) != os.path.abspath(tokenizer_path):
        with atomic_path(tokenizer_copy) as tmp:
            shutil.copyfile(tokenizer_path, tmp)
    record = {'format': RECORD_FORMAT, 'library_version': __version__,
              'command': command or shlex.join(['kobert-gluon', 'pretrain'] + config_flags(config)),
              'bert': bert_config.to_dict(),
              'params': {'file': PARAMS_FILE, 'md5': assets.md5sum(params_path), 'dtype': config.save_dtype},
              'tokenizer': {'file': os.path.basename(tokenizer_path), 'md5': assets.md5sum(tokenizer_copy)},
              'corpus': corpus_fingerprint(config.corpus),
              'init_from': ({'file': os.path.basename(config.init_from), 'md5': assets.md5sum(config.init_from)}
                            if config.init_from else None),
              'objective': config.objective, 'generator': generator,
              'steps': state['step'], 'epochs_read': state['position']['epoch'], 'seconds': round(state['seconds'], 1),
              'cpu_seconds': round(state.get('cpu_seconds', 0.0), 3),
              'stopped_by': 'max_cpu_seconds' if state['step'] < config.num_steps else 'num_steps',
              'seed': config.seed, 'final_mlm_loss': state['history'][-1]['mlm_loss'] if state['history'] else None,
              'config': dataclasses.asdict(config), 'history': state['history']}
    write_json(os.path.join(config.output_dir, RECORD_FILE), record)
    logger.info('pretrained BERT saved: %s (%d steps, %.0f s)', params_path, state['step'], state['seconds'])
    return params_path


def config_flags(config):
    """The settings that differ from the defaults, as CLI flags (for the record)."""
    flags = []
    for item in dataclasses.fields(PretrainConfig):
        value = getattr(config, item.name)
        if value != item.default:
            flags += [f'--{item.name}'] if value is True else [f'--{item.name}', str(value)]
    return flags
