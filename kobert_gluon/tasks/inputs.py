"""What a model reads: the columns a row comes from, one encoded input (a named structure, not a
positional tuple), the training examples and batches.

The encoding is gluonnlp 0.10's ``BERTSentenceTransform(tokenizer, max_len, pad, pair)``, the
notebooks' own: ``[CLS] A [SEP]`` with segment ids 0, and for a pair ``B [SEP]`` with segment ids
1, the longer side losing its last piece first until the whole fits ``max_len``
(``_truncate_seq_pair``). Loaders yield the notebooks' order ``(token_ids, valid_length,
segment_ids, label)`` (:class:`Batch`); the model is called as ``model(token_ids, segment_ids,
valid_length)`` (:func:`model_inputs`).
"""
import collections
import dataclasses
from typing import Optional, Tuple

import gluonnlp as nlp
import numpy as np
from mxnet.gluon.data import Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..text.data import check_text

Encoded = collections.namedtuple('Encoded', 'token_ids valid_length segment_ids')  # one input, the transform's order
ModelInputs = collections.namedtuple('ModelInputs', 'token_ids segment_ids valid_length')  # a batch, the model's order
Batch = collections.namedtuple('Batch', 'token_ids valid_length segment_ids label')
Example = collections.namedtuple('Example', 'text text_pair label')  # label: the encoded target


@dataclasses.dataclass(frozen=True)
class Columns:
    """The columns of a table a run reads: the text, an optional second text (sentence pairs), and
    the label column or, for multi-label 0/1 columns, ``label_columns``."""
    text: str = 'text'
    text_pair: Optional[str] = None
    label: Optional[str] = 'label'
    label_columns: Tuple[str, ...] = ()
    label_separator: str = ','
    sheet: Optional[str] = None  # a workbook's sheet (text/tables.py)

    @classmethod
    def of(cls, settings):
        """From a TrainConfig (or the dict train_config.json holds)."""
        get = settings.get if isinstance(settings, dict) else lambda name, default=None: getattr(settings, name, default)
        columns = get('label_columns')
        return cls(text=get('text_column', 'text'), text_pair=get('text_pair_column'),
                   label=get('label_column', 'label'), label_columns=split_names(columns),
                   label_separator=get('label_separator', ','), sheet=get('sheet'))

    def check_distinct(self):
        """Each column has one role: ``--text_column label`` beside ``--label_column label`` is refused."""
        named = [('--text_column', self.text)] + ([('--text_pair_column', self.text_pair)] if self.text_pair else [])
        named += [('--label_columns', name) for name in self.label_columns] or [('--label_column', self.label)]
        roles = {}
        for flag, name in named:
            if name in roles:
                raise ConfigError(f'{flag} {name!r} is the column {roles[name]} already names: a column cannot be '
                                  'both; name a column of its own for each')
            roles[name] = flag
        return self

    def label_sources(self):
        return list(self.label_columns) or [self.label]

    def texts(self):
        return [self.text] + ([self.text_pair] if self.text_pair else [])

    def all(self):
        return self.texts() + self.label_sources()


def split_names(columns):
    """``'a,b,c'`` (the CLI's --label_columns) or a list, as a tuple of names; None: ()."""
    if not columns:
        return ()
    if isinstance(columns, str):
        columns = columns.split(',')
    names = tuple(str(name).strip() for name in columns)
    if any(not name for name in names):
        raise ConfigError(f'label_columns={columns!r}: an empty column name')
    return names


def row_text(text, text_pair=None):
    """The text of one row as row hashes and split digests spell it (a pair's two texts joined
    by a tab, which a TSV cell cannot hold); a single sentence is its text, as before 0.8."""
    return text if text_pair is None else f'{text}\t{text_pair}'


def model_inputs(batch):
    """:class:`ModelInputs` of a :class:`Batch` (or anything with the three fields): the model
    is called ``model(*model_inputs(batch))``."""
    return ModelInputs(batch.token_ids, batch.segment_ids, batch.valid_length)


class SentenceEncoder:
    """A text, or a pair of texts, as :class:`Encoded`: exactly BERTSentenceTransform's arrays."""

    def __init__(self, tokenizer, max_len, pad=False, pair=False):
        self.pair = pair
        self._transform = nlp.data.BERTSentenceTransform(tokenizer, max_seq_length=max_len, pad=pad, pair=pair)

    def __call__(self, text, text_pair=None):
        return Encoded(*self._transform([text, text_pair] if self.pair else [text]))


class EncodedDataset(Dataset):
    """Encoded inputs with their targets: items in the notebooks' order (token_ids, valid_length,
    segment_ids, label), as BERTDataset's."""

    def __init__(self, encoded, labels):
        self.encoded = list(encoded)
        self.labels = labels

    def __getitem__(self, i):
        return tuple(self.encoded[i]) + (self.labels[i],)

    def __len__(self):
        return len(self.encoded)


def encode_examples(examples, tokenizer, max_len, pad, pair):
    """:class:`EncodedDataset` of training examples (tokenized once, here, as BERTDataset does)."""
    encoder = SentenceEncoder(tokenizer, max_len, pad, pair)
    # disable=None: a bar on a terminal, silence in logs and pipes.
    encoded = [encoder(example.text, example.text_pair)
               for example in tqdm(examples, desc='tokenizing', leave=False, disable=None, mininterval=1)]
    return EncodedDataset(encoded, [example.label for example in examples])


def as_inputs(texts, pair):
    """``texts`` as a list of ``(text, text_pair)``: strings for a single-sentence model, pairs
    (two-item tuples or lists) for a pair model; one ConfigError naming the item otherwise."""
    if texts is None or isinstance(texts, (str, bytes, dict)):
        raise ConfigError(f'texts must be a list (or other iterable) of {_items(pair)}, got {type(texts).__name__}')
    try:
        items = list(texts)
    except TypeError:
        raise ConfigError(f'texts must be a list (or other iterable) of {_items(pair)}, got '
                          f'{type(texts).__name__}') from None
    return [_as_input(item, i, pair) for i, item in enumerate(items)]


def _items(pair):
    return '(text, text_pair) pairs' if pair else 'strings'


def _as_input(item, i, pair):
    if pair:
        if isinstance(item, str) or not isinstance(item, (tuple, list, np.ndarray)) or len(item) != 2:
            raise ConfigError(f'texts[{i}] is {_describe(item)}: this model reads sentence pairs; pass '
                              '(text, text_pair) tuples')
        return tuple(_checked_text(text, f'texts[{i}][{j}]') for j, text in enumerate(item))
    if isinstance(item, (tuple, list)):
        raise ConfigError(f'texts[{i}] is a pair ({_describe(item)}), but this model reads single sentences')
    return _checked_text(item, f'texts[{i}]'), None


def _checked_text(text, where):
    if isinstance(text, np.str_):
        text = str(text)
    if not isinstance(text, str):
        raise ConfigError(f'{where} is {type(text).__name__}, expected str')
    return check_text(text, where)


def _describe(item):
    if isinstance(item, (tuple, list)):
        return f'a {type(item).__name__} of {len(item)}'
    return type(item).__name__
