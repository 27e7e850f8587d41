"""TextClassifier (and EntityTagger, its token-classification sibling): a fine-tuned BERT with its task and everything needed to turn text (or sentence
pairs) into its inputs and its outputs into the task's predictions; saved and loaded as a model
directory (:mod:`.model_dir`). What the outputs mean (a label, a score, several labels) is the
task's (:mod:`kobert_gluon.tasks`): this class never names one.

:class:`EntityTagger` is a token-classification model (``--task token_classification``): text
becomes piece windows and per-piece outputs become entities with character offsets in the
user's text. ``TextClassifier.load`` of such a model directory gives one, so
``kg.load(path).predict(texts)`` answers entities as it answers labels for a classifier."""
import copy
import logging
import os

import mxnet as mx
import numpy as np
from tqdm.auto import tqdm

from .. import arguments as _arg
from .._version import __version__
from ..assets import md5sum
from ..device import check_ctx
from ..errors import ConfigError
from ..models import precision
from ..tasks import registry
from ..tasks.inputs import ModelInputs, SentenceEncoder, as_inputs, model_inputs
from ..models.config import BertConfig
from ..tasks.piece_inputs import encode_sentence, merge_windows
from ..text.alignment import PieceAligner, entities_from_piece_tags
from ..text.data import LabelMap, check_max_len, check_text, demo_data_path, read_table
from ..text.tokenizer import get_bert_tokenizer, get_vocab
from .model_dir import (check_config_max_len, load_weights, read_bert_config, read_config, read_task,
                        tokenizer_files, write_model_dir)

logger = logging.getLogger(__name__)

CALIBRATION_SENTENCES = 512


class TextClassifier:
    """A fine-tuned BERT (KoBERT's BERTClassifier for the sequence tasks) together with everything
    needed to turn text into its inputs and its outputs into predictions.

    ``task`` is a registered task name (default: classification, the notebooks'); ``pair``:
    the model reads sentence pairs; ``task_settings``: the task's settings (a multi-label
    threshold)."""

    def __init__(self, model, tokenizer, label_map, bert_config, max_len, tokenizer_files,
                 dropout=0.1, ctx=None, training=None, *, task=None, task_settings=None, pair=False):
        _arg.instance('TextClassifier', 'model', model, mx.gluon.Block, 'a Gluon block (build_classifier)')
        if not callable(tokenizer) or not hasattr(tokenizer, 'vocab'):
            _arg.instance('TextClassifier', 'tokenizer', tokenizer, (), 'a tokenizer with a vocab (get_bert_tokenizer)')
        _arg.instance('TextClassifier', 'label_map', label_map, LabelMap, 'a LabelMap')
        _arg.instance('TextClassifier', 'bert_config', bert_config, BertConfig, 'a BertConfig')
        check_max_len(max_len, bert_config.max_length, 'TextClassifier: max_len')
        _arg.instance('TextClassifier', 'tokenizer_files', tokenizer_files, dict, "a dict of role -> path ({'tokenizer': ...})")
        _arg.real('TextClassifier', 'dropout', dropout, 0, 1, open_interval=False)
        _arg.instance('TextClassifier', 'ctx', ctx or mx.cpu(), mx.Context, 'an mxnet context (mx.cpu(), mx.gpu(0))')
        _arg.flag('TextClassifier', 'pair', pair)
        self.model = model
        self.tokenizer = tokenizer
        self.label_map = label_map
        self.bert_config = bert_config
        self.max_len = max_len
        self.tokenizer_files = dict(tokenizer_files)
        self.dropout = dropout
        self.ctx = ctx or mx.cpu()
        self.dtype = 'float32'
        self.training = training  # what the training run recorded (the split's hashes), if known
        self.task = registry.get(task) if not isinstance(task, registry.Task) else task
        self.task_settings = self.task.check_settings(task_settings, 'task_settings')
        self.pair = bool(pair)
        # Set by train() on the classifier it returns: the run's history, directory and test report.
        self.history = None
        self.run_dir = None
        self.test_report = None
        self._encoder = SentenceEncoder(tokenizer, max_len, pad=False, pair=self.pair)
        self._pad_id = tokenizer.vocab[tokenizer.vocab.padding_token]

    @property
    def num_classes(self):
        """Outputs of the head (labels; 1 for a score)."""
        return self.task.num_outputs(self.label_map.names)

    def inputs(self, texts):
        """``texts`` as ``(text, text_pair)`` items (text_pair None for single-sentence models)."""
        return as_inputs(texts, pair=self.pair)

    def encode(self, texts):
        """Per-input :class:`~kobert_gluon.tasks.inputs.Encoded` (token_ids, valid_length,
        segment_ids), truncated at max_len; ``texts`` may also be ``(text, text_pair)`` items."""
        return [self._encoder(text, pair) for text, pair in self.inputs(texts)]

    def batches(self, encoded, batch_size, width=None):
        """:class:`~kobert_gluon.tasks.inputs.ModelInputs` batches (token_ids, segment_ids,
        valid_length: numpy int32 arrays) padded to their own longest input (or to ``width``).

        The one padding path besides training's: training pads inside gluonnlp's DataLoader
        (BERTSentenceTransform(pad=True), or batchify.Pad with --bucketing), which yields
        NDArrays and cannot pad to a fixed width. Prediction needs numpy rows in any order
        (sorted by length, then put back), and a fixed ``width`` for INT8 calibration and
        export tracing. tests/unit/inference/test_pipeline.py checks that both give the same arrays.
        """
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            chunk_width = width or max(int(item.valid_length) for item in chunk)
            token_ids = np.full((len(chunk), chunk_width), self._pad_id, dtype=np.int32)
            segment_ids = np.zeros((len(chunk), chunk_width), dtype=np.int32)
            for row, item in enumerate(chunk):
                token_ids[row, :len(item.token_ids)] = item.token_ids
                segment_ids[row, :len(item.segment_ids)] = item.segment_ids
            valid_lengths = np.array([int(item.valid_length) for item in chunk], dtype=np.int32)
            yield ModelInputs(token_ids, segment_ids, valid_lengths)

    def _nd(self, batch):
        return [mx.nd.array(a, ctx=self.ctx, dtype='int32') for a in model_inputs(batch)]

    def forward(self, batch):
        """The model's float32 numpy outputs of one batch of :meth:`batches`."""
        return self.model(*self._nd(batch)).astype('float32').asnumpy()

    def logits(self, texts, batch_size=64):
        """The head's outputs in input order (rows x outputs). Inputs are batched by length, so
        little padding is computed."""
        batch_size = check_batch_size(batch_size)
        encoded = self.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: int(encoded[i].valid_length))
        outputs = [np.zeros((0, self.num_classes), dtype=np.float32)]
        batches = self.batches([encoded[i] for i in order], batch_size)
        for batch in tqdm(batches, desc='predicting', total=-(-len(encoded) // batch_size), leave=False,
                          disable=None, mininterval=1):
            outputs.append(self.forward(batch))
        logits = np.empty((len(encoded), self.num_classes), dtype=np.float32)
        logits[order] = np.concatenate(outputs)
        return logits

    def with_precision(self, dtype, calibration_texts=None, **int8_settings):
        """A copy computing in ``dtype`` ('float32', 'bfloat16', 'float16', 'int8'); self is unchanged.

        int8 calibrates activation ranges on up to 512 of ``calibration_texts``; ``int8_settings``
        (``calib_mode``, ``quantize_granularity``) go to :func:`kobert_gluon.for_inference`.
        bfloat16 falls back to float32, with a warning, on CPUs without bf16 support. The copy
        holds its own weights: drop self (and ``gc.collect()``) to free the float32 ones.
        """
        dtype = precision.resolve(dtype, self.ctx)
        calibration = None
        if dtype == 'int8':
            texts = [] if calibration_texts is None else self.inputs(calibration_texts)[:CALIBRATION_SENTENCES]
            if not texts:
                raise ConfigError("with_precision: dtype='int8' needs calibration_texts, a sample of real inputs "
                                  '(kobert_gluon.calibration_sample() gives the demo set\'s)')
            texts = [item if self.pair else item[0] for item in texts]
            calibration = self._nd(next(self.batches(self.encode(texts), len(texts), width=self.max_len)))
        converted = copy.copy(self)
        converted.model = precision.for_inference(self.model, dtype, self.ctx, calibration, **int8_settings)
        converted.dtype = dtype
        return converted

    def predict_proba(self, texts, batch_size=64):
        """Per input, the task's probabilities (softmax for classification, one sigmoid per label
        for multi-label; a regression model's scores as they are)."""
        return self.task.probabilities(self.logits(texts, batch_size))

    def predict(self, texts, batch_size=64, threshold=None):
        """The task's answer per input: a label (classification), a score (regression), a list of
        labels (multi-label); blank texts included."""
        return self.task.answers(self.logits(texts, batch_size), self.label_map.names, self.settings_with(threshold))

    def predict_records(self, texts, batch_size=64, threshold=None):
        """One dict per input, in input order: ``text`` (and ``text_pair``) and the task's fields
        (classification: ``label``, ``probabilities``; regression: ``score``; multi-label:
        ``labels``, ``probabilities``). ``threshold``: a multi-label model's, for this call.

        A blank text (empty or whitespace only) has nothing to predict: it keeps its place with
        the task's fields set to None instead of a confident guess.
        """
        settings = self.settings_with(threshold)
        inputs = self.inputs(texts)
        scored = [i for i, (text, pair) in enumerate(inputs) if text.strip() and (pair is None or pair.strip())]
        probabilities = self.predict_proba([inputs[i] if self.pair else inputs[i][0] for i in scored], batch_size)
        names = self.label_map.names
        records = [{**_texts(text, pair), **self.task.blank_prediction(names)} for text, pair in inputs]
        for i, row in zip(scored, probabilities):
            records[i].update(self.task.prediction(row, names, settings))
        blank = len(inputs) - len(scored)
        if blank:
            logger.warning('%d of %d texts are empty or whitespace only: no prediction for them', blank, len(inputs))
        return records

    def settings_with(self, threshold=None):
        """The task settings of this model, with a multi-label ``threshold`` for one call."""
        if threshold is None:
            return self.task_settings
        return self.task.check_settings({**self.task_settings, 'threshold': threshold}, 'threshold')

    def config_dict(self):
        return {'library_version': __version__, 'task': self.task.name, 'task_settings': self.task_settings,
                'pair': self.pair, 'bert': self.bert_config.to_dict(),
                'max_len': self.max_len, 'num_classes': self.num_classes, 'dropout': self.dropout,
                'labels': self.label_map.to_dict(),
                'tokenizer': {role: {'file': os.path.basename(path), 'md5': md5sum(path)}
                              for role, path in self.tokenizer_files.items()},
                **({'training': self.training} if self.training else {})}

    def save(self, directory):
        """Write the model directory atomically (readers never see half of one)."""
        write_model_dir(directory, self.model, self.tokenizer_files, self.config_dict())
        logger.info('saved model to %s', directory)
        return directory

    @classmethod
    def load(cls, directory, ctx=None):
        directory = _arg.path('load', 'directory', directory)
        ctx = check_ctx(ctx or mx.cpu())
        config = read_config(directory)
        task, settings, pair = read_task(directory, config)
        files = tokenizer_files(directory, config)
        vocab = get_vocab(files['tokenizer'], files.get('vocab_json'))
        bert_config = read_bert_config(directory, config)
        check_config_max_len(directory, config, bert_config)
        label_map = LabelMap(sorted(config['labels'], key=config['labels'].get))
        model = task.build_model(bert_config, config['num_classes'], config['dropout'], ctx)
        load_weights(model, directory, ctx)
        model.hybridize(static_alloc=True)
        return classifier_class(task)(model, get_bert_tokenizer(files['tokenizer'], vocab), label_map, bert_config,
                   config['max_len'], files, config['dropout'], ctx, config.get('training'), task=task,
                   task_settings=settings, pair=pair)


def _texts(text, pair):
    return {'text': text} if pair is None else {'text': text, 'text_pair': pair}


def as_texts(texts):
    """Any iterable of strings as a list; one clear error for everything else."""
    if texts is None or isinstance(texts, (str, bytes)):
        raise ConfigError(f'texts must be a list (or other iterable) of strings, got {type(texts).__name__}')
    try:
        texts = list(texts)
    except TypeError:
        raise ConfigError(f'texts must be a list (or other iterable) of strings, got {type(texts).__name__}') from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f'texts[{i}] is {type(text).__name__}, expected str')
        check_text(text, f'texts[{i}]')
    return texts


def check_batch_size(batch_size):
    """An integer of at least 1 (numpy integers too) as a Python int."""
    if not _arg.is_integer(batch_size) or batch_size < 1:
        raise ConfigError(f'batch_size={batch_size!r} must be an integer of at least 1')
    return int(batch_size)


load = TextClassifier.load


# ---------------------------------------------------------------------------- token classification

class EntityTagger(TextClassifier):
    """A fine-tuned BERT tagger: ``predict(texts)`` gives each text's entities,
    ``[{'entity_group', 'word', 'start', 'end', 'score'}]`` (transformers' token-classification
    pipeline with ``aggregation_strategy='simple'``); ``start``/``end`` index the text as given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.aligner = PieceAligner.from_tokenizer(self.tokenizer)

    @property
    def stride(self):
        return self.task_settings['stride']

    def pieces(self, text):
        """The text's pieces with their character spans (:class:`~kobert_gluon.text.alignment.Piece`)."""
        return self.aligner.pieces(text)

    def windows(self, texts):
        """``(pieces per text, windows of all texts)``: each window a
        :class:`~kobert_gluon.tasks.piece_inputs.Window` naming its text."""
        pieces = [self.pieces(text) for text, _ in self.inputs(texts)]
        windows = [window for number, items in enumerate(pieces)
                   for window in encode_sentence(self.tokenizer.vocab, items, self.max_len, self.stride, False,
                                                 number)]
        return pieces, windows

    def encode(self, texts):
        return [window.encoded for window in self.windows(texts)[1]]

    def logits(self, texts, batch_size=64):
        """Per text, the head's outputs for each of its pieces (pieces x tags; [CLS] and [SEP]
        left out), windows merged; pieces after a cut (stride 0) get none."""
        check_batch_size(batch_size)
        pieces, windows = self.windows(texts)
        order = sorted(range(len(windows)), key=lambda i: int(windows[i].encoded.valid_length))
        rows = [None] * len(windows)
        batches = self.batches([windows[i].encoded for i in order], batch_size)
        done = 0
        for batch in tqdm(batches, desc='tagging', total=-(-len(windows) // batch_size), leave=False,
                          disable=None, mininterval=1):
            outputs = self.forward(batch)
            for row, length in zip(outputs, batch.valid_length):
                rows[order[done]] = row[1:int(length) - 1]
                done += 1
        by_text = [[] for _ in pieces]
        for window, row in zip(windows, rows):
            by_text[window.sentence].append((window, row))
        return [merge_windows(min(len(items), max(w.end for w, _ in parts)), [w for w, _ in parts],
                              [r for _, r in parts]) for items, parts in zip(pieces, by_text)]

    def predict(self, texts, batch_size=64, threshold=None):
        """Each text's entities (a list per text; an empty list for a blank text)."""
        return [record['entities'] for record in self.predict_records(texts, batch_size)]

    def predict_records(self, texts, batch_size=64, threshold=None):
        """``{'text', 'entities'}`` per input, in input order."""
        texts = [text for text, _ in self.inputs(texts)]
        names = self.label_map.names
        probabilities = self.predict_proba(texts, batch_size)
        records = []
        for text, rows in zip(texts, probabilities):
            pieces = self.pieces(text)[:len(rows)]
            records.append({'text': text, **self.task.prediction(rows, names, self.task_settings, text, pieces)})
        return records

    def predicted_spans(self, texts, batch_size=64):
        """Each text's entities as character spans, read from the argmax tags as seqeval's
        strict IOB2 reads them (what the metrics score)."""
        names = self.label_map.names
        spans = []
        for text, rows in zip(texts, self.logits(texts, batch_size)):
            tags = [names[int(i)] for i in np.asarray(rows).argmax(axis=-1)] if len(rows) else []
            spans.append([tuple(span) for span in entities_from_piece_tags(self.pieces(text)[:len(tags)], tags)])
        return spans

    def collect_texts(self, texts, gold, batch_size=64):
        """The rows the task's report reads (texts, gold and predicted spans)."""
        return self.task.collect_sentences(texts, gold, self.predicted_spans(list(texts), batch_size))


def classifier_class(task):
    """The class that predicts for ``task``: TextClassifier, or EntityTagger for a task with
    outputs per piece (token classification)."""
    return EntityTagger if task.per_piece else TextClassifier


def calibration_sample():
    """Sentences for int8 calibration when the user gives none: the embedded demo set's."""
    return list(read_table(demo_data_path(), 'text', 'label')['text'][:CALIBRATION_SENTENCES])
