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
    last/             the checkpoint ``--resume`` continues from
"""
import dataclasses
import logging
import os
import shlex
import shutil
import time
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import gluon
from tqdm.auto import tqdm

from .. import assets

from . import checkpoint

from . import rundir
from .._version import __version__
from ..text.corpus import Position, check_corpus, read_chunks, sample_lines, tokenized_chunks
from ..errors import CheckpointError, ConfigError, DataError
from ..fileio import atomic_directory, atomic_path, file_inside, package_file, read_json, write_json
from ..models.bert import BertConfig, build_bert, load_params
from ..text.tokenizer import SPECIAL_TOKENS, get_bert_tokenizer, get_vocab, train_sentencepiece
from .finetune import OptimizerConfig, clip_gradients, exclude_from_weight_decay, field, learning_rate_at

logger = logging.getLogger(__name__)

BERT_SIZES = ('small', 'kobert')
TOKENIZER_CHOICES = ('auto', 'kobert', 'train')
SAVE_DTYPES = ('float32', 'float16')
PARAMS_FILE = 'bert.params'
RECORD_FILE = 'pretrain.json'
TOKENIZER_DIR = 'tokenizer'
TRAINED_TOKENIZER = 'tokenizer.spiece'
RECORD_FORMAT = 'kobert_gluon.pretrained_bert'
SHIPPED_DIR = ('resources', 'pretrained')
NOT_NEXT, RANDOM_NEXT = 0, 1  # next-sentence labels as in BERT's create_pretraining_data
# Pieces below this id are the specials [UNK] [PAD] [CLS] [SEP] [MASK]: never masked, never drawn.
FIRST_ORDINARY_ID = len(SPECIAL_TOKENS)
WIDTH_MULTIPLE = 8  # batch widths rounded up to it, so few graph shapes get built


@dataclasses.dataclass
class PretrainConfig(OptimizerConfig):
    """Every setting of a pretraining run; the CLI's flags are these field names."""
    corpus: Optional[str] = field(None, 'UTF-8 text file: one sentence per line (documents separated by blank '
                                        'lines for --next_sentence); streamed, any size')
    output_dir: Optional[str] = field(None, 'run directory: bert.params, tokenizer/, pretrain.json, last/ '
                                            '(none: a new runs/pretrain-<date-time>)')
    init_from: Optional[str] = field(None, 'BERT params file in bert_12_768_12 layout to continue from '
                                           "(KoBERT's mxnet_kobert_*.params or a pretrain result)")
    bert: str = field('small', "'small' (2 layers x 128) or 'kobert' (12 x 768); the four flags below override")
    num_layers: Optional[int] = field(None, 'transformer layers (overrides --bert)')
    units: Optional[int] = field(None, 'hidden units (overrides --bert)')
    hidden_size: Optional[int] = field(None, 'feed-forward units (overrides --bert)')
    num_heads: Optional[int] = field(None, 'attention heads (overrides --bert)')
    tokenizer: str = field('auto', "'kobert', 'train' (SentencePiece on the corpus), a .spiece path, or 'auto': "
                                   "KoBERT's when found (always for --bert kobert / --init_from), else train")
    tokenizer_vocab_size: int = field(8002, 'pieces of a tokenizer trained on the corpus')
    tokenizer_sentences: int = field(300000, 'lines from the start of the corpus a tokenizer is trained on')
    kobert_dir: Optional[str] = field(None, 'directory holding the KoBERT files')
    max_len: int = field(128, 'tokens per sequence, [CLS] and [SEP] included')
    batch_size: int = field(32, 'sequences per optimizer step')
    num_steps: int = field(1000, 'optimizer steps (the corpus is read again as often as needed); 0: save the '
                                 'initial weights (a from-scratch start with this tokenizer)')
    learning_rate: float = field(1e-4, 'peak learning rate')
    epsilon: float = field(1e-6, 'bertadam epsilon')
    mask_prob: float = field(0.15, 'share of tokens chosen for prediction')
    max_predictions: int = field(20, 'most predicted tokens per sequence')
    whole_word_mask: bool = field(False, 'choose whole words (a ▁ piece and the pieces after it)')
    next_sentence: bool = field(False, 'next-sentence prediction on pairs from documents (blank-line separated)')
    split_lines: bool = field(False, 'with --next_sentence: pairs from single lines instead, each cut in two at a '
                                     'random piece (a corpus without documents, e.g. one review per line)')
    chunk_lines: int = field(2048, 'lines tokenized and shuffled together')
    num_procs: int = field(2, 'tokenizer worker processes (0: tokenize in this process)')
    rank: int = field(0, 'this worker\'s shard: line i is read by rank i % num_workers')
    num_workers: int = field(1, 'number of shards (distributed workers)')
    save_every: int = field(1000, 'steps between checkpoints in last/')
    log_interval: int = field(100, 'steps between log lines')
    seed: int = field(42, 'seed for masking, pairing, shuffling, dropout and initialisation')
    ctx: str = field('auto', "'auto', 'cpu', 'gpu' or 'gpu:1' (one device)")
    save_dtype: str = field('float32', "dtype of bert.params on disk: 'float32' or 'float16' (half the size)")
    resume: bool = field(False, 'continue from output_dir/last')
    overwrite: bool = field(False, 'delete a previous run in --output_dir and start over')

    def validate(self):
        if not self.corpus:
            raise ConfigError('corpus: a text file is required (--corpus FILE)')
        check_corpus(self.corpus)
        if self.num_steps < 0:
            raise ConfigError(f'num_steps={self.num_steps}: must be 0 (only initialise and save) or more')
        for name in ('batch_size', 'max_predictions', 'chunk_lines', 'num_workers',
                     'save_every', 'log_interval', 'tokenizer_sentences'):
            if getattr(self, name) < 1:
                raise ConfigError(f'{name}={getattr(self, name)}: must be at least 1')
        if not 0 <= self.rank < self.num_workers:
            raise ConfigError(f'rank={self.rank}: must be in [0, num_workers={self.num_workers})')
        if self.num_procs < 0:
            raise ConfigError(f'num_procs={self.num_procs}: must be at least 0')
        if not 0 < self.mask_prob < 1:
            raise ConfigError(f'mask_prob={self.mask_prob}: must be between 0 and 1')
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f'warmup_ratio={self.warmup_ratio}: must be in [0, 1)')
        if self.bert not in BERT_SIZES:
            raise ConfigError(f'bert={self.bert!r}: expected one of {BERT_SIZES}')
        if self.save_dtype not in SAVE_DTYPES:
            raise ConfigError(f'save_dtype={self.save_dtype!r}: expected one of {SAVE_DTYPES}')
        if self.tokenizer not in TOKENIZER_CHOICES and not os.path.isfile(self.tokenizer):
            raise ConfigError(f'tokenizer={self.tokenizer!r}: no such file; or one of {TOKENIZER_CHOICES}')
        if self.init_from and not os.path.isfile(self.init_from):
            raise ConfigError(f'init_from={self.init_from}: no such file')
        if self.split_lines and not self.next_sentence:
            raise ConfigError('split_lines makes next-sentence pairs: it needs --next_sentence')
        if self.max_len < (5 if self.next_sentence else 3):
            raise ConfigError(f'max_len={self.max_len}: too short for [CLS] ... [SEP]')


# ---------------------------------------------------------------------------- masking

def mask_tokens(tokens, rng, vocab_size, mask_prob=0.15, max_predictions=20, word_starts=None):
    """BERT's masking of one sequence of token ids.

    Returns ``(masked, positions, labels)``: the input with chosen tokens replaced, their
    positions (ascending) and original ids. Specials (ids below 5, [PAD] included) are never
    chosen. With ``word_starts`` (a bool per vocab id: the piece begins a word) a word's pieces
    are chosen together, and a word that would overshoot the budget is skipped, as in BERT.
    """
    tokens = np.asarray(tokens)
    candidates = np.flatnonzero(tokens >= FIRST_ORDINARY_ID)
    groups = _word_groups(tokens, candidates, word_starts)
    budget = min(max_predictions, max(1, int(round(len(candidates) * mask_prob)))) if len(candidates) else 0
    chosen = []
    for group in rng.permutation(len(groups)):
        if len(chosen) + len(groups[group]) <= budget:
            chosen.extend(groups[group])
        if len(chosen) == budget:
            break
    positions = np.sort(np.asarray(chosen, dtype=np.int64))
    labels = tokens[positions]
    masked = tokens.copy()
    action = rng.random(len(positions))
    random_ids = rng.integers(FIRST_ORDINARY_ID, vocab_size, size=len(positions))
    masked[positions] = np.where(action < 0.8, SPECIAL_TOKENS.index('[MASK]'),
                                 np.where(action < 0.9, labels, random_ids))
    return masked, positions, labels


def _word_groups(tokens, candidates, word_starts):
    if word_starts is None:
        return [[int(p)] for p in candidates]
    # A word runs from a ▁ piece (or the piece after a special) to the next; an [UNK]
    # inside it is left out of the group, not a word boundary.
    previous = np.roll(tokens, 1)
    after_special = (previous > SPECIAL_TOKENS.index('[UNK]')) & (previous < FIRST_ORDINARY_ID)
    word_ids = np.cumsum(word_starts[tokens] | after_special)
    groups = {}
    for p in candidates:
        groups.setdefault(word_ids[p], []).append(int(p))
    return list(groups.values())


def word_start_table(vocab):
    """True for every piece that begins a word (SentencePiece marks those with ``▁``)."""
    return np.array([token.startswith('▁') for token in vocab.idx_to_token], dtype=bool)


# ---------------------------------------------------------------------------- examples and batches

def single_examples(lines, max_len, cls_id, sep_id):
    """(tokens, segments, next-sentence label) per line: [CLS] line [SEP], truncated."""
    for ids in lines:
        if len(ids):
            tokens = np.concatenate([[cls_id], ids[:max_len - 2], [sep_id]])
            yield tokens, np.zeros(len(tokens), dtype=np.int32), NOT_NEXT


def pair_examples(documents, max_len, cls_id, sep_id, rng):
    """Consecutive sentence pairs of each document; half get a random sentence from another
    document of the same chunk instead (label RANDOM_NEXT). One-sentence documents give none."""
    documents = [[ids for ids in document if len(ids)] for document in documents]
    documents = [document for document in documents if document]
    for index, document in enumerate(documents):
        for j in range(len(document) - 1):
            first, second, label = document[j], document[j + 1], NOT_NEXT
            if len(documents) > 1 and rng.random() < 0.5:
                other = (index + 1 + rng.integers(len(documents) - 1)) % len(documents)
                second, label = documents[other][rng.integers(len(documents[other]))], RANDOM_NEXT
            yield _pair(list(first), list(second), label, max_len, cls_id, sep_id)


def split_line_examples(lines, max_len, cls_id, sep_id, rng):
    """Each line cut in two at a random piece; half keep their own second part, half get the
    second part of another line of the chunk (label RANDOM_NEXT). One-piece lines give none."""
    lines = [ids for ids in lines if len(ids) >= 2]
    for index, ids in enumerate(lines):
        cut = rng.integers(1, len(ids))
        first, second, label = ids[:cut], ids[cut:], NOT_NEXT
        if len(lines) > 1 and rng.random() < 0.5:
            other = lines[(index + 1 + rng.integers(len(lines) - 1)) % len(lines)]
            second, label = other[rng.integers(1, len(other)):], RANDOM_NEXT
        yield _pair(list(first), list(second), label, max_len, cls_id, sep_id)


def _pair(first, second, label, max_len, cls_id, sep_id):
    first, second = _truncate_pair(first, second, max_len - 3)
    tokens = np.array([cls_id] + first + [sep_id] + second + [sep_id])
    segments = np.array([0] * (len(first) + 2) + [1] * (len(second) + 1), dtype=np.int32)
    return tokens, segments, label


def _truncate_pair(first, second, limit):
    while len(first) + len(second) > limit:
        (first if len(first) > len(second) else second).pop()
    return first, second


def make_batch(examples, rng, vocab_size, pad_id, mask_prob, max_predictions, word_starts):
    """numpy arrays of one batch: each sequence masked, padded to the batch's own width."""
    masked = [mask_tokens(tokens, rng, vocab_size, mask_prob, max_predictions, word_starts)
              for tokens, _, _ in examples]
    width = _round_up(max(len(tokens) for tokens, _, _ in examples))
    predictions = _round_up(max(1, max(len(positions) for _, positions, _ in masked)))
    batch = {'token_ids': np.full((len(examples), width), pad_id, dtype=np.int32),
             'segment_ids': np.zeros((len(examples), width), dtype=np.int32),
             'valid_length': np.array([len(tokens) for tokens, _, _ in examples], dtype=np.float32),
             'masked_positions': np.zeros((len(examples), predictions), dtype=np.int32),
             'masked_ids': np.zeros((len(examples), predictions), dtype=np.int32),
             'masked_weights': np.zeros((len(examples), predictions), dtype=np.float32),
             'next_sentence': np.array([label for _, _, label in examples], dtype=np.int32)}
    for row, ((_, segments, _), (tokens, positions, labels)) in enumerate(zip(examples, masked)):
        batch['token_ids'][row, :len(tokens)] = tokens
        batch['segment_ids'][row, :len(segments)] = segments
        batch['masked_positions'][row, :len(positions)] = positions
        batch['masked_ids'][row, :len(labels)] = labels
        batch['masked_weights'][row, :len(labels)] = 1
    return batch


def _round_up(width):
    return -(-width // WIDTH_MULTIPLE) * WIDTH_MULTIPLE


class BatchStream:
    """Endless batches of this rank's shard, reading the corpus again epoch after epoch.

    Everything random about a chunk (shuffle, pairs, masks) comes from a generator seeded with
    (seed, epoch, the chunk's first unit), so the batches depend only on the settings: a
    resumed run re-reads the chunk it stopped in and skips the batches it already used.
    """

    def __init__(self, config, tokenizer_path, vocab, word_starts=None):
        self.config = config
        self.tokenizer_path = tokenizer_path
        self.vocab_size = len(vocab)
        self.pad_id, self.cls_id, self.sep_id = (vocab[t] for t in ('[PAD]', '[CLS]', '[SEP]'))
        self.word_starts = word_starts

    def __call__(self, position):
        """Yield ``(batch, position after it)``; ``position`` is a dict from an earlier one."""
        config = self.config
        epoch, skip = position['epoch'], position['batch']
        start = Position(position['offset'], position['unit'])
        while True:
            found = False
            chunks = read_chunks(config.corpus, config.chunk_lines, config.rank, config.num_workers,
                                 config.next_sentence and not config.split_lines, start)
            for chunk, ids in tokenized_chunks(chunks, self.tokenizer_path, config.num_procs):
                rng = np.random.default_rng([config.seed, epoch, chunk.start.unit])
                for number, batch in enumerate(self.chunk_batches(ids, rng)):
                    found = True
                    if number >= skip:
                        yield batch, {'epoch': epoch, 'offset': chunk.start.offset,
                                      'unit': chunk.start.unit, 'batch': number + 1}
                skip = 0
            if not found and start.unit == 0:
                raise DataError(f'{config.corpus}: no text for rank {config.rank} of {config.num_workers}'
                                + (' (next_sentence needs documents of two or more lines)'
                                   if config.next_sentence else ''))
            epoch, start = epoch + 1, Position()
            logger.info('corpus read; epoch %d begins', epoch)

    def chunk_batches(self, ids, rng):
        config = self.config
        if config.next_sentence and config.split_lines:
            examples = list(split_line_examples(ids, config.max_len, self.cls_id, self.sep_id, rng))
        elif config.next_sentence:
            examples = list(pair_examples(ids, config.max_len, self.cls_id, self.sep_id, rng))
        else:
            examples = list(single_examples(ids, config.max_len, self.cls_id, self.sep_id))
        examples = [examples[i] for i in rng.permutation(len(examples))]
        for begin in range(0, len(examples), config.batch_size):
            yield make_batch(examples[begin:begin + config.batch_size], rng, self.vocab_size, self.pad_id,
                             config.mask_prob, config.max_predictions, self.word_starts)


# ---------------------------------------------------------------------------- model, tokenizer, files

def bert_config_for(config, vocab_size):
    base = BertConfig.kobert() if config.bert == 'kobert' else BertConfig.small()
    overrides = {name: getattr(config, name) for name in ('num_layers', 'units', 'hidden_size', 'num_heads')
                 if getattr(config, name) is not None}
    try:
        bert_config = dataclasses.replace(base, vocab_size=vocab_size, **overrides)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if config.max_len > bert_config.max_length:
        raise ConfigError(f'max_len={config.max_len}: the model has {bert_config.max_length} positions')
    return bert_config


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
        names = {}  # the decoder's weight is the embedding's: one parameter, two names
        for name, param in model._collect_params_with_prefix().items():
            names.setdefault(id(param), []).append(name)
        missing = [aliases[0] for aliases in names.values() if not saved.intersection(aliases)]
        heads = ('decoder.', 'classifier.', 'pooler.')
        if [name for name in missing if not name.startswith(heads)]:
            raise ConfigError(f'{init_from}: not a BERT of this size in bert_12_768_12 layout '
                              f'(missing {missing[:3]})')
        if missing:
            logger.info('%s has no %s: they start from random weights', init_from, missing)
        load_params(model, init_from, ctx, ignore_extra=True, allow_missing=bool(missing))
    return model


def save_bert_params(model, path, dtype='float32'):
    """``save_parameters`` in ``dtype``; the decoder's tied weight is stored once, under
    the embedding's name, so encoder-only models find it."""
    arrays = {}
    stored = set()
    for name, param in model._collect_params_with_prefix().items():
        if id(param) not in stored:
            stored.add(id(param))
            arrays[name] = param._reduce().astype(dtype)
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, arrays)


def shipped_params():
    return package_file(*SHIPPED_DIR, PARAMS_FILE)


def fine_tuning_start(init_from, demo=False):
    """(params file or None, its pretrain record or None) that fine-tuning starts from.

    ``'none'`` means random weights. Without ``init_from`` the demo (no data) starts from the
    checkpoint shipped in the package; other runs from nothing here (KoBERT's file is found by
    the caller).
    """
    if init_from == 'none' or (init_from is None and not demo):
        return None, None
    path = init_from or shipped_params()
    if init_from is None and not os.path.isfile(path):
        return None, None
    if not os.path.isfile(path):
        raise ConfigError(f'init_from={path}: no such file')
    return path, read_record(path)


def read_record(params_path):
    """The pretrain.json beside a bert.params (md5s checked), or None when there is none."""
    directory = os.path.dirname(os.path.abspath(params_path))
    path = os.path.join(directory, RECORD_FILE)
    if os.path.basename(params_path) != PARAMS_FILE or not os.path.isfile(path):
        return None
    record = read_json(path)
    if record.get('format') != RECORD_FORMAT:
        raise ConfigError(f'{path}: not a {RECORD_FORMAT} record')
    for role, file in (('params', params_path), ('tokenizer', record_tokenizer_path(params_path, record))):
        if not os.path.isfile(file):
            raise ConfigError(f'{path}: names {file}, which is missing')
        if assets.md5sum(file) != record[role]['md5']:
            raise ConfigError(f'{file}: md5 differs from the one in {path}')
    return record


def record_tokenizer_path(params_path, record):
    directory = os.path.dirname(os.path.abspath(params_path))
    return file_inside(directory, TOKENIZER_DIR, record['tokenizer']['file'], ConfigError,
                       os.path.join(directory, RECORD_FILE))


def record_tokenizer(params_path, record):
    """(tokenizer, vocab, files) of a pretrain result, as load_tokenizer returns them."""
    path = record_tokenizer_path(params_path, record)
    vocab = get_vocab(path)
    return get_bert_tokenizer(path, vocab), vocab, {'tokenizer': path}


# ---------------------------------------------------------------------------- checkpoints

def save_checkpoint(directory, model, trainer, state):
    """``last/``: weights, optimizer state (no pickle) and where the corpus was left, atomically;
    state.json last, listing the files, as fine-tuning's checkpoints (rundir)."""
    with atomic_directory(directory) as tmp:
        save_bert_params(model, os.path.join(tmp, PARAMS_FILE))
        checkpoint.save_trainer_state(trainer, tmp)
        rundir.write_state(tmp, state)


def load_checkpoint(directory, model, trainer, ctx):
    state = rundir.read_state(directory)
    if 'position' not in state or 'step' not in state:
        raise CheckpointError(f'{os.path.join(directory, rundir.STATE_FILE)}: not a pretraining checkpoint')
    try:
        load_params(model, os.path.join(directory, PARAMS_FILE), ctx)
    except ValueError as error:
        raise CheckpointError(str(error)) from error
    checkpoint.load_trainer_state(trainer, directory)
    return state


# ---------------------------------------------------------------------------- the recipe

def pretrain(config, command=None):
    """Run the configured pretraining; returns the path of the saved bert.params.

    The run directory is protected as in fine-tuning: one run at a time, never overwritten
    without --resume or --overwrite."""
    from ..device import parse_ctx

    config.validate()
    ctx = parse_ctx(config.ctx)[0]
    config = dataclasses.replace(config, output_dir=config.output_dir or rundir.unique_run_dir('pretrain'))
    with rundir.locked(config.output_dir):
        rundir.prepare(config.output_dir, config.resume, config.overwrite)
        return _pretrain(config, ctx, command)


def _pretrain(config, ctx, command):
    tokenizer_path = prepare_tokenizer(config)
    vocab = get_vocab(tokenizer_path)
    bert_config = bert_config_for(config, len(vocab))
    mx.random.seed(config.seed)
    model = build_pretraining_model(bert_config, ctx, config.init_from)
    model.hybridize(static_alloc=True)

    params = model.collect_params()
    exclude_from_weight_decay(params)
    if not config.next_sentence:  # the NSP head (and the pooler feeding it) gets no gradient
        for name, param in params.items():
            if '_pooler_' in name or '_classifier_' in name:
                param.grad_req = 'null'
    trainable = [p for p in params.values() if p.grad_req != 'null']
    trainer = gluon.Trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                 'epsilon': config.epsilon, 'wd': config.weight_decay},
                            update_on_kvstore=False)
    num_warmup_steps = int(config.num_steps * config.warmup_ratio)
    loss_function = gluon.loss.SoftmaxCELoss()

    last_dir = os.path.join(config.output_dir, 'last')
    state = {'step': 0, 'seconds': 0.0, 'history': [],
             'position': {'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0}}
    # The newest complete checkpoint, also after a crash while last/ was being replaced.
    newest = rundir.newest_checkpoint(config.output_dir, 'last') if config.resume else None
    if newest:
        state = load_checkpoint(newest, model, trainer, ctx)
        logger.info('resuming %s at step %d', newest, state['step'])

    word_starts = word_start_table(vocab) if config.whole_word_mask else None
    stream = BatchStream(config, tokenizer_path, vocab, word_starts)(state['position'])
    progress = tqdm(total=config.num_steps, initial=state['step'], desc='pretraining', disable=None)
    started, window = time.time() - state['seconds'], []
    try:
        while state['step'] < config.num_steps:
            batch, position = next(stream)
            # Dropout drawn per step, so a resumed run repeats the uninterrupted one's masks.
            mx.random.seed(config.seed * 1_000_003 + state['step'])
            losses = train_step(model, trainer, trainable, loss_function, batch, ctx, config,
                                learning_rate_at(state['step'], config.num_steps, num_warmup_steps,
                                                 config.learning_rate))
            state['step'] += 1
            state['position'] = position
            window.append(losses)
            progress.update(1)
            progress.set_postfix(mlm=f'{losses[0]:.3f}', lr=f'{trainer.learning_rate:.2e}')
            if state['step'] % config.log_interval == 0 or state['step'] == config.num_steps:
                mean = np.mean(window, axis=0)
                state['history'].append({'step': state['step'], 'mlm_loss': float(mean[0]),
                                         'nsp_loss': float(mean[1]), 'lr': trainer.learning_rate,
                                         'epoch': position['epoch']})
                logger.info('step %d/%d mlm loss %.4f nsp loss %.4f lr %.3e', state['step'], config.num_steps,
                            mean[0], mean[1], trainer.learning_rate)
                window = []
            if state['step'] % config.save_every == 0 or state['step'] == config.num_steps:
                state['seconds'] = time.time() - started
                save_checkpoint(last_dir, model, trainer, state)
    finally:
        stream.close()  # stops the tokenizer workers
        progress.close()
    return save_result(config, model, bert_config, tokenizer_path, state, command)


def train_step(model, trainer, trainable, loss_function, batch, ctx, config, learning_rate):
    """One optimizer step; returns (MLM loss, NSP loss) of the batch."""
    inputs = {name: mx.nd.array(array, ctx=ctx, dtype=array.dtype) for name, array in batch.items()}
    with mx.autograd.record():
        _, _, nsp_logits, mlm_logits = model(inputs['token_ids'], inputs['segment_ids'],
                                             inputs['valid_length'], inputs['masked_positions'])
        weights = inputs['masked_weights'].reshape((-1, 1))
        mlm_loss = (loss_function(mlm_logits.reshape((-1, mlm_logits.shape[-1])),
                                  inputs['masked_ids'].reshape((-1,)), weights).sum()
                    / mx.nd.maximum(weights.sum(), 1))
        loss = mlm_loss
        if config.next_sentence:
            nsp_loss = loss_function(nsp_logits, inputs['next_sentence']).mean()
            loss = loss + nsp_loss
    loss.backward()
    trainer.set_learning_rate(learning_rate)
    clip_gradients(trainable, config.max_grad_norm, group_size=1)  # the loss is already a mean
    trainer.update(1)
    return mlm_loss.asscalar(), nsp_loss.asscalar() if config.next_sentence else 0.0


def save_result(config, model, bert_config, tokenizer_path, state, command):
    """bert.params + tokenizer/ + pretrain.json in output_dir."""
    params_path = os.path.join(config.output_dir, PARAMS_FILE)
    save_bert_params(model, params_path, config.save_dtype)
    tokenizer_copy = os.path.join(config.output_dir, TOKENIZER_DIR, os.path.basename(tokenizer_path))
    if os.path.abspath(tokenizer_copy) != os.path.abspath(tokenizer_path):
        with atomic_path(tokenizer_copy) as tmp:
            shutil.copyfile(tokenizer_path, tmp)
    record = {'format': RECORD_FORMAT, 'library_version': __version__,
              'command': command or shlex.join(['kobert-gluon', 'pretrain'] + config_flags(config)),
              'bert': bert_config.to_dict(),
              'params': {'file': PARAMS_FILE, 'md5': assets.md5sum(params_path), 'dtype': config.save_dtype},
              'tokenizer': {'file': os.path.basename(tokenizer_path), 'md5': assets.md5sum(tokenizer_copy)},
              'corpus': {'file': os.path.basename(config.corpus), 'md5': assets.md5sum(config.corpus),
                         'bytes': os.path.getsize(config.corpus)},
              'init_from': ({'file': os.path.basename(config.init_from), 'md5': assets.md5sum(config.init_from)}
                            if config.init_from else None),
              'steps': state['step'], 'epochs_read': state['position']['epoch'], 'seconds': round(state['seconds'], 1),
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
