"""The settings of the two recipes, fine-tuning (:class:`TrainConfig`) and pretraining
(:class:`PretrainConfig`): dataclasses whose fields are the CLI flags, validated one way
(:func:`check_types`, then ranges), before any work is done."""
import dataclasses
import math
import os
import typing
from typing import Optional

from ..errors import ConfigError
from ..models.config import BertConfig, bert_config_for
from ..tasks import registry
from ..tasks.inputs import Columns, split_names
from ..text.corpus import check_corpus
from ..text.data import check_max_len
from ..text.vocab import KOBERT_VOCAB_SIZE
from .distributed import ENGINES


BERT_SIZES = ('auto', 'kobert', 'small')
REPORT_TO = ('none', 'tensorboard')
# Each size's own recipe, used for every one of these settings the user leaves at None: the
# small BERT (random or shipped weights) needs the demo's larger rate and more epochs to learn
# at all; KoBERT's pretrained weights take the notebook's recipe.
SIZE_DEFAULTS = {'small': {'learning_rate': 5e-4, 'batch_size': 32, 'num_epochs': 8, 'log_interval': 5},
                 'kobert': {'learning_rate': 5e-5, 'batch_size': 64, 'num_epochs': 5, 'log_interval': 200}}
DTYPES = ('float32', 'bfloat16', 'float16')


def field(default, help, choices=None, recipe=False):
    """A setting: its default, its help (the CLI flag's), the values it may take (checked by
    validate() and by argparse) and whether it shapes the model (``recipe``: --resume refuses a
    change of it, rundir.run_inputs)."""
    return dataclasses.field(default=default, metadata={'help': help, 'choices': choices, 'recipe': recipe})


def choices_of(config_class):
    """{field name: allowed values} of the fields that have a fixed set of values."""
    return {item.name: item.metadata['choices'] for item in dataclasses.fields(config_class)
            if item.metadata.get('choices')}


def recipe_fields(config_class):
    return tuple(item.name for item in dataclasses.fields(config_class) if item.metadata.get('recipe'))


@dataclasses.dataclass
class OptimizerConfig:
    """The optimisation recipe fine-tuning and pretraining share: bertadam, linear warmup then
    linear decay, global-norm clipping (pretraining overrides the rate and epsilon defaults)."""
    learning_rate: float = field(5e-5, 'peak learning rate', recipe=True)
    warmup_ratio: float = field(0.1, 'share of steps with linearly rising learning rate', recipe=True)
    weight_decay: float = field(0.01, 'bertadam weight decay (not on LayerNorm or biases)', recipe=True)
    epsilon: float = field(1e-9, 'bertadam epsilon', recipe=True)
    max_grad_norm: float = field(1.0, 'global gradient norm clip', recipe=True)

    def check_optimizer(self):
        for name in ('learning_rate', 'epsilon', 'max_grad_norm'):
            _check(self, name, getattr(self, name) > 0, 'must be a positive number')
        _check(self, 'weight_decay', self.weight_decay >= 0, 'must be 0 or more')
        _check(self, 'warmup_ratio', 0 <= self.warmup_ratio < 1, 'must be in [0, 1)')


@dataclasses.dataclass
class TrainConfig(OptimizerConfig):
    """Every setting of a fine-tuning run; the CLI's flags are these field names."""
    data: Optional[str] = field(None, 'labeled TSV/CSV/XLSX file; none: the embedded Korean demo set')
    task: str = field('classification', "'classification' (one label per text), 'regression' (a score, e.g. "
                                        "KorSTS), 'multi_label' (several labels per text, e.g. KOTE), "
                                        "'token_classification' (named entities from a KLUE TSV, CoNLL or "
                                        "JSONL file)",
                      choices=registry.names(), recipe=True)
    text_column: str = field('text', 'column holding the sentences', recipe=True)
    text_pair_column: Optional[str] = field(None, 'column holding the second sentence of each pair (NLI, STS, '
                                                  'paraphrase); none: single sentences', recipe=True)
    label_column: str = field('label', 'column holding the labels (names or integers; regression: scores; '
                                        'multi_label: --label_separator-separated lists)', recipe=True)
    label_columns: Optional[str] = field(None, "multi_label: comma-separated names of 0/1 columns, one per label "
                                               "(instead of --label_column)", recipe=True)
    label_separator: str = field(',', 'multi_label: what separates the labels in one --label_column cell',
                                 recipe=True)
    threshold: float = field(0.5, 'multi_label: probability above which a label is predicted (recorded in the '
                                  'model; predict --threshold overrides it)', recipe=True)
    stride: int = field(0, 'token_classification: a sentence longer than max_len is split into windows of '
                           'max_len - 2 pieces, each overlapping the one before by this many pieces (as '
                           "transformers' stride); 0: cut at max_len (the cut is counted in truncation.json)",
                        recipe=True)
    test_data: Optional[str] = field(None, 'separate test file; none: a stratified split of --data')
    test_size: float = field(0.2, 'share of --data held out for testing when there is no --test_data', recipe=True)
    valid_data: Optional[str] = field(None, 'separate validation file; none: a stratified split of the training part')
    valid_size: float = field(0.1, 'share of the training part held out to pick best/ (0: no selection, '
                                   'best/ is the last epoch)', recipe=True)
    allow_overlap: bool = field(False, 'train although over 10%% of the test (or validation) rows of a separate '
                                       'file are training rows (refused otherwise; any overlap is a warning)')
    sheet: Optional[str] = field(None, 'XLSX files: the sheet to read (needed when a workbook has several sheets '
                                       'with data)')
    num_classes: Optional[int] = field(None, 'expected number of classes; checked against the labels')
    init_from: Optional[str] = field(None, 'pretrained BERT params file (bert_12_768_12 layout) to start from, '
                                           "instead of KoBERT's own; a `kobert-gluon pretrain` result brings its "
                                           "tokenizer and size along; a transformers BERT directory is converted; "
                                           "'none': random weights. Unset with --bert small (the demo too): the "
                                           'checkpoint shipped in kobert_gluon/resources/pretrained/')
    kobert_dir: Optional[str] = field(None, 'directory holding the KoBERT files (else KOBERT_HOME, the cache, a download)')
    bert: str = field('auto', "'kobert' (12 layers, pretrained), 'small' (2 layers, from scratch), or 'auto': "
                              "kobert when --data is given", choices=BERT_SIZES, recipe=True)
    learning_rate: Optional[float] = field(None, 'peak learning rate', recipe=True)
    max_len: int = field(64, 'tokens per sentence (a pair: both sentences), [CLS] and [SEP] included', recipe=True)
    batch_size: Optional[int] = field(None, 'sentences per optimizer step (before accumulation) on each worker',
                                      recipe=True)
    num_epochs: Optional[int] = field(None, 'passes over the training set')
    extend: bool = field(False, 'with --resume: accept a larger --num_epochs than the run was started with. The '
                                'learning-rate schedule is recomputed for the new total: linear decay continues '
                                'from the current rate (a finished run: its last non-zero rate) down to 0 at the '
                                'new last step; a run still warming up finishes its warmup first. The rate never '
                                'jumps up')
    accumulate: int = field(1, 'batches whose gradients add up to one step', recipe=True)
    dropout: float = field(0.1, 'dropout before the classifier head', recipe=True)
    log_interval: Optional[int] = field(None, 'batches between log lines (without a terminal also one at least '
                                              'every 30 s)')
    seed: int = field(42, 'seed for the split, shuffling, dropout and initialisation (0 <= seed < 4,000,000)',
                      recipe=True)
    ctx: str = field('auto', "'auto', 'cpu', 'gpu' or 'gpu:0,1'")
    distributed: str = field('none', "'none', 'horovod' (under horovodrun) or 'dist_sync' (under kobert-gluon "
                                     "launch); the global batch is batch_size x workers x accumulate",
                             choices=ENGINES)
    dtype: str = field('float32', "'float32', 'bfloat16' (CPU AMP) or 'float16' (GPU AMP)", choices=DTYPES,
                       recipe=True)
    bucketing: bool = field(False, 'batch sentences of similar length, padded per batch', recipe=True)
    select_metric: Optional[str] = field(None, "validation metric that picks best/; classification: 'accuracy' "
                                               "(default) or 'macro_f1'; regression: 'spearman' (default), "
                                               "'pearson' or 'mse'; multi_label: 'micro_f1' (default), 'macro_f1' "
                                               "or 'exact_match'; token_classification: 'entity_f1' (default) or "
                                               "'char_f1'", recipe=True)
    early_stopping: int = field(0, 'stop after this many epochs without validation improvement (0: never)')
    save_every: int = field(0, 'also checkpoint last/ every this many optimizer steps (0: once per epoch)')
    tokenizer_vocab_size: int = field(3000, 'pieces of a tokenizer trained on --data when KoBERT files are absent',
                                      recipe=True)
    output_dir: Optional[str] = field(None, 'run directory: checkpoints, best/ and last/ models, plots '
                                            '(none: a new runs/<name>-<date-time>)')
    report_to: str = field('none', "'none' or 'tensorboard' (tensorboardX, the 'report' extra): scalars in "
                                   "output_dir/tensorboard; metrics.jsonl is always written", choices=REPORT_TO)
    resume: bool = field(False, 'continue the run in --output_dir from its newest complete checkpoint')
    overwrite: bool = field(False, 'delete a previous run in --output_dir and start over')
    allow_pickle_resume: bool = field(False, "resume from an old pickled trainer.states: unpickling can run "
                                             "arbitrary code, so only for files you made yourself")

    @classmethod
    def demo(cls, **overrides):
        """The embedded default: a small BERT learns the demo set in a few minutes on 2 cores
        (the 'small' size defaults, :data:`SIZE_DEFAULTS`)."""
        return cls(**{'bert': 'small', **overrides}).resolved()

    def resolved(self):
        """A copy with the size made explicit ('auto' -> 'kobert' or 'small') and every setting
        left at None set to that size's default (:data:`SIZE_DEFAULTS`). train() and the CLI
        use it, and train_config.json records its values, so a resume repeats them exactly."""
        size = bert_size(self) if self.bert in BERT_SIZES else self.bert  # validate() names a bad size
        defaults = SIZE_DEFAULTS.get(size, SIZE_DEFAULTS['small'])
        unset = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        if self.select_metric is None and self.task in registry.names():  # validate() names a bad task
            unset['select_metric'] = registry.get(self.task).select_metrics[0]
        return dataclasses.replace(self, bert=size, **unset)

    def validate(self):
        """Type and range of every setting, before any work is done."""
        check_types(self, TrainConfig)
        _check(self, 'bert', self.bert in BERT_SIZES, f'expected one of {BERT_SIZES}')
        _check(self, 'task', self.task in registry.names(), f'expected one of {registry.names()}')
        if any(getattr(self, name) is None for name in (*SIZE_DEFAULTS['small'], 'select_metric')):
            self.resolved().validate()  # the size defaults are what will run
            return self
        check_max_len(self.max_len, max_positions(self), 'max_len')
        for name in ('batch_size', 'num_epochs', 'accumulate', 'log_interval', 'tokenizer_vocab_size'):
            _check(self, name, getattr(self, name) >= 1, 'must be at least 1')
        for name in ('early_stopping', 'save_every'):
            _check(self, name, getattr(self, name) >= 0, 'must be 0 (off) or more')
        self.check_optimizer()
        check_seed_and_rate(self)
        _check(self, 'init_from', self.init_from in (None, 'none') or os.path.exists(self.init_from),
               'no such file or directory')
        _check(self, 'dropout', 0 <= self.dropout < 1, 'must be in [0, 1)')
        _check(self, 'test_size', 0 < self.test_size < 1, 'must be between 0 and 1')
        _check(self, 'valid_size', 0 <= self.valid_size < 1, 'must be in [0, 1)')
        _check(self, 'num_classes', self.num_classes is None or self.num_classes >= 2, 'must be at least 2')
        for name, choices in choices_of(TrainConfig).items():
            _check(self, name, getattr(self, name) in choices, f'expected one of {choices}')
        check_task_settings(self)
        if self.resume and self.overwrite:
            raise ConfigError('resume and overwrite exclude each other: --resume continues the run in '
                              '--output_dir, --overwrite deletes it')
        if self.resume and not self.output_dir:
            raise ConfigError('--resume needs --output_dir: the run directory to continue')
        if self.extend and not self.resume:
            raise ConfigError('--extend changes the number of epochs of a run being resumed: it needs --resume')
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


def check_task_settings(config):
    """The settings that depend on --task: its metrics, pairs, label columns and threshold."""
    task = registry.get(config.task)
    _check(config, 'select_metric', config.select_metric in task.select_metrics,
           f'--task {task.name} is selected on one of {task.select_metrics}')
    if config.text_pair_column is not None:
        _check(config, 'text_pair_column', task.pairs, f'--task {task.name} reads single texts')
        _check(config, 'text_pair_column', config.text_pair_column != config.text_column,
               'must name another column than --text_column')
    label_columns = split_names(config.label_columns)
    if label_columns:
        _check(config, 'label_columns', task.name == 'multi_label', 'is for --task multi_label (0/1 columns)')
        _check(config, 'label_columns', len(set(label_columns)) == len(label_columns), 'names a column twice')
    _check(config, 'label_separator', bool(config.label_separator.strip()), 'must not be empty or whitespace')
    for name in task.default_settings:
        task.check_settings({name: getattr(config, name)}, name)
    if config.stride:
        _check(config, 'stride', 'stride' in task.default_settings, 'is for --task token_classification')
        _check(config, 'stride', config.stride < config.max_len - 2,
               f'must be less than max_len - 2 ({config.max_len - 2} pieces per window)')
    if task.per_piece:
        _check(config, 'distributed', config.distributed == 'none',
               f'--task {task.name} trains in one process (its validation scores whole sentences)')
    Columns.of(config).check_distinct()  # --text_column label beside --label_column label


# Seeds: numpy needs 0 <= seed < 2**32, and the recipes derive seed * 1000 + epoch (fine-tuning)
# and seed * 1_000_003 + step (pretraining) from it; MAX_SEED keeps every derived seed in range.
MAX_SEED = 4_000_000
MAX_LEARNING_RATE = 1.0  # beyond this bertadam's update overflows float32 at once (1e308: MXNetError)


def check_seed_and_rate(config):
    _check(config, 'seed', 0 <= config.seed < MAX_SEED, f'must be in [0, {MAX_SEED:_})')
    _check(config, 'learning_rate', 0 < config.learning_rate <= MAX_LEARNING_RATE,
           f'must be in (0, {MAX_LEARNING_RATE}]')


def check_types(config, config_class=None):
    """Each field holds its annotated type: 1.5 epochs or max_len '64' are errors, not surprises."""
    config_class = config_class or type(config)
    if not isinstance(config, config_class) or not dataclasses.is_dataclass(config):
        raise ConfigError(f'config={config!r:.40}: expected a {config_class.__name__}, got {type(config).__name__}; '
                          f'build one with {config_class.__name__}(**settings)')
    for name, hint in typing.get_type_hints(config_class).items():
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


def bert_size(config):
    return 'kobert' if config.bert == 'kobert' or (config.bert == 'auto' and config.data) else 'small'


PRETRAIN_SIZES = ('small', 'kobert')
TOKENIZER_CHOICES = ('auto', 'kobert', 'train')
SAVE_DTYPES = ('float32', 'float16')
SIZE_FLAGS = ('num_layers', 'units', 'hidden_size', 'num_heads')  # override --bert's size


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
    objective: str = field('mlm', "'mlm' (BERT's masked LM) or 'electra' (replaced-token detection: a small "
                                  "generator fills the masks, the BERT tells every piece replaced or not)",
                           choices=('mlm', 'electra'))
    generator_size: float = field(0.25, 'electra: the generator\'s units (and feed-forward) as a share of the BERT\'s')
    rtd_weight: float = field(50.0, 'electra: weight of the replaced-token loss against the generator\'s MLM loss')
    sentence_order: bool = field(False, 'sentence-order prediction (trains the [CLS] pooler): each line cut in two '
                                        'at a random piece, half the pairs swapped')
    max_cpu_seconds: float = field(0.0, 'stop (saving everything) once this process has used this many CPU '
                                        'seconds, resumed parts included (0: no limit)')
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
    allow_corpus_change: bool = field(False, 'with --resume: continue on a corpus other than the one the run began '
                                             'on (else refused), from the same position')

    def validate(self):
        """Type and range of every setting, before any work is done (as TrainConfig.validate)."""
        check_types(self, PretrainConfig)
        if not self.corpus:
            raise ConfigError('corpus: a text file is required (--corpus FILE)')
        check_corpus(self.corpus)
        _check(self, 'num_steps', self.num_steps >= 0, 'must be 0 (only initialise and save) or more')
        for name in ('batch_size', 'max_predictions', 'chunk_lines', 'num_workers',
                     'save_every', 'log_interval', 'tokenizer_sentences'):
            _check(self, name, getattr(self, name) >= 1, 'must be at least 1')
        _check(self, 'rank', 0 <= self.rank < self.num_workers, f'must be in [0, num_workers={self.num_workers})')
        _check(self, 'num_procs', self.num_procs >= 0, 'must be at least 0')
        _check(self, 'mask_prob', 0 < self.mask_prob < 1, 'must be between 0 and 1')
        self.check_optimizer()
        check_seed_and_rate(self)
        for name, choices in (('bert', PRETRAIN_SIZES), ('save_dtype', SAVE_DTYPES)):
            _check(self, name, getattr(self, name) in choices, f'expected one of {choices}')
        _check(self, 'tokenizer', self.tokenizer in TOKENIZER_CHOICES or os.path.isfile(self.tokenizer),
               f'no such file; or one of {TOKENIZER_CHOICES}')
        _check(self, 'init_from', not self.init_from or os.path.isfile(self.init_from), 'no such file')
        _check(self, 'objective', self.objective in ('mlm', 'electra'), "expected 'mlm' or 'electra'")
        _check(self, 'generator_size', 0 < self.generator_size <= 1, 'must be in (0, 1]')
        _check(self, 'rtd_weight', self.rtd_weight > 0, 'must be a positive number')
        _check(self, 'max_cpu_seconds', self.max_cpu_seconds >= 0, 'must be 0 (no limit) or more')
        if self.sentence_order and self.next_sentence:
            raise ConfigError('sentence_order and next_sentence are two pair objectives on the same head: pick one')
        if self.split_lines and not self.next_sentence:
            raise ConfigError('split_lines makes next-sentence pairs: it needs --next_sentence')
        _check(self, 'max_len', self.max_len >= (5 if self.next_sentence or self.sentence_order else 3), 'too short for [CLS] ... [SEP]')
        if self.resume and self.overwrite:
            raise ConfigError('resume and overwrite exclude each other: --resume continues the run in '
                              '--output_dir, --overwrite deletes it')
        return self


def kobert_sized_config(config, vocab):
    """The BertConfig fine-tuning builds; KoBERT's pretrained weights need KoBERT's vocabulary."""
    size = bert_size(config)
    if size == 'kobert' and len(vocab) != KOBERT_VOCAB_SIZE:
        raise ConfigError(f'the tokenizer has {len(vocab)} pieces, the kobert model {KOBERT_VOCAB_SIZE}')
    return bert_config_for(size, len(vocab))
