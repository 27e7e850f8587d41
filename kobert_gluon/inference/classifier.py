"""TextClassifier: a fine-tuned BERTClassifier with everything needed to turn text into its
inputs and its outputs into labels; saved and loaded as a model directory (:mod:`.model_dir`)."""
import copy
import logging
import os

import gluonnlp as nlp
import mxnet as mx
import numpy as np
from tqdm.auto import tqdm

from .._version import __version__
from ..assets import md5sum
from ..device import check_ctx
from ..errors import ConfigError
from ..models import precision
from ..models.bert import build_bert
from ..models.heads import BERTClassifier
from ..text.data import LabelMap, check_text, demo_data_path, read_table
from ..text.tokenizer import get_bert_tokenizer, get_vocab
from . import tasks
from .model_dir import (check_config_max_len, load_weights, read_bert_config, read_config, tokenizer_files,
                        write_model_dir)

logger = logging.getLogger(__name__)

CALIBRATION_SENTENCES = 512


class TextClassifier:
    """A BERTClassifier together with everything needed to turn text into its inputs."""

    def __init__(self, model, tokenizer, label_map, bert_config, max_len, tokenizer_files,
                 dropout=0.1, ctx=None, training=None):
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
        # Set by train() on the classifier it returns: the run's history, directory and test report.
        self.history = None
        self.run_dir = None
        self.test_report = None
        self._transform = nlp.data.BERTSentenceTransform(tokenizer, max_seq_length=max_len, pad=False, pair=False)
        self._pad_id = tokenizer.vocab[tokenizer.vocab.padding_token]

    @property
    def num_classes(self):
        return len(self.label_map)

    def encode(self, texts):
        """Per-sentence (token_ids, valid_length, segment_ids), truncated at max_len."""
        return [self._transform([text]) for text in as_texts(texts)]

    def batches(self, encoded, batch_size, width=None):
        """numpy int32 batches padded to their own longest sentence (or to ``width``).

        The one padding path besides training's: training pads inside gluonnlp's DataLoader
        (BERTSentenceTransform(pad=True), or batchify.Pad with --bucketing), which yields
        NDArrays and cannot pad to a fixed width. Prediction needs numpy rows in any order
        (sorted by length, then put back), and a fixed ``width`` for INT8 calibration and
        export tracing. tests/test_pipeline.py checks that both give the same arrays.
        """
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            chunk_width = width or max(int(valid_length) for _, valid_length, _ in chunk)
            token_ids = np.full((len(chunk), chunk_width), self._pad_id, dtype=np.int32)
            segment_ids = np.zeros((len(chunk), chunk_width), dtype=np.int32)
            for row, (ids, valid_length, segments) in enumerate(chunk):
                token_ids[row, :len(ids)] = ids
                segment_ids[row, :len(segments)] = segments
            valid_lengths = np.array([int(v) for _, v, _ in chunk], dtype=np.int32)
            yield token_ids, segment_ids, valid_lengths

    def _nd(self, arrays):
        return [mx.nd.array(a, ctx=self.ctx, dtype='int32') for a in arrays]

    def logits(self, texts, batch_size=64):
        """Logits in input order. Sentences are batched by length, so little padding is computed."""
        check_batch_size(batch_size)
        encoded = self.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: int(encoded[i][1]))
        outputs = [np.zeros((0, self.num_classes), dtype=np.float32)]
        batches = self.batches([encoded[i] for i in order], batch_size)
        for batch in tqdm(batches, desc='predicting', total=-(-len(encoded) // batch_size), leave=False,
                          disable=None, mininterval=1):
            outputs.append(self.model(*self._nd(batch)).astype('float32').asnumpy())
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
            texts = list(calibration_texts or [])[:CALIBRATION_SENTENCES]
            if not texts:
                raise ValueError('dtype=int8 needs calibration sentences (a sample of real inputs)')
            calibration = self._nd(next(self.batches(self.encode(texts), len(texts), width=self.max_len)))
        converted = copy.copy(self)
        converted.model = precision.for_inference(self.model, dtype, self.ctx, calibration, **int8_settings)
        converted.dtype = dtype
        return converted

    def predict_proba(self, texts, batch_size=64):
        logits = self.logits(texts, batch_size)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, texts, batch_size=64):
        return self.label_map.decode(self.logits(texts, batch_size).argmax(axis=1))

    def predict_records(self, texts, batch_size=64):
        """One ``{'text', 'label', 'probabilities'}`` dict per text, in input order.

        A blank text (empty or whitespace only) has nothing to classify: it keeps its place
        with ``label`` and ``probabilities`` set to None instead of a confident guess.
        """
        texts = as_texts(texts)
        scored = [i for i, text in enumerate(texts) if text.strip()]
        probabilities = self.predict_proba([texts[i] for i in scored], batch_size)
        records = [{'text': text, 'label': None, 'probabilities': None} for text in texts]
        for i, row in zip(scored, probabilities):
            records[i].update(tasks.TEXT_CLASSIFICATION.prediction(row, self.label_map.names))
        blank = len(texts) - len(scored)
        if blank:
            logger.warning('%d of %d texts are empty or whitespace only: no prediction for them', blank, len(texts))
        return records

    def config_dict(self):
        return {'library_version': __version__, 'bert': self.bert_config.to_dict(),
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
        ctx = check_ctx(ctx or mx.cpu())
        config = read_config(directory)
        files = tokenizer_files(directory, config)
        vocab = get_vocab(files['tokenizer'], files.get('vocab_json'))
        bert_config = read_bert_config(directory, config)
        check_config_max_len(directory, config, bert_config)
        label_map = LabelMap(sorted(config['labels'], key=config['labels'].get))
        bert = build_bert(bert_config, use_pooler=True, use_decoder=False, use_classifier=False)
        model = BERTClassifier(bert, num_classes=config['num_classes'], dropout=config['dropout'])
        model.initialize(ctx=ctx)
        load_weights(model, directory, ctx)
        model.hybridize(static_alloc=True)
        return cls(model, get_bert_tokenizer(files['tokenizer'], vocab), label_map, bert_config,
                   config['max_len'], files, config['dropout'], ctx, config.get('training'))


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
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f'batch_size={batch_size!r} must be an integer of at least 1')
    return batch_size


load = TextClassifier.load


def calibration_sample():
    """Sentences for int8 calibration when the user gives none: the embedded demo set's."""
    return list(read_table(demo_data_path(), 'text', 'label')['text'][:CALIBRATION_SENTENCES])
