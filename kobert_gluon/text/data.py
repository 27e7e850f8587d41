"""Reading labeled Korean text, mapping labels to ids, splitting, and BERTDataset.

``BERTDataset`` keeps the exact signature of the KoBERT notebooks so copied code runs
unchanged; everything else here exists to get a user's file into the rows it expects.
"""
import csv
import hashlib
import io
import logging
import numbers
import os

import gluonnlp as nlp
import numpy as np
import pandas as pd
from mxnet.gluon.data import Dataset
from tqdm.auto import tqdm

from .. import arguments as _arg
from ..arguments import is_integer
from ..errors import ConfigError, DataError
from ..fileio import package_file, read_json, write_json
from .labels import is_integer_key, label_key
from .tables import read_workbook
from .vocab import MAX_POSITIONS, MIN_MAX_LEN

logger = logging.getLogger(__name__)


# utf-8-sig also reads plain utf-8; cp949 is a superset of euc-kr (the Korean Windows default).
CSV_ENCODINGS = ('utf-8-sig', 'cp949')
TSV_SUFFIXES = ('.tsv', '.txt')
DEMO_DATA = 'demo_sentiment.tsv'  # the embedded Korean demo set (resources/)
EXCEL_SUFFIXES = ('.xlsx', '.xls')
INT32 = np.iinfo(np.int32)


def read_table(path, text_column, label_column=None, encoding=None, sheet=None):
    """Read ``text_column`` (and ``label_column``) of a TSV, CSV or XLSX file (``sheet``: the
    workbook's sheet to read, see :mod:`kobert_gluon.text.tables`). Only empty cells are missing:
    ``NA``, ``null`` and ``N/A`` are text in every format.

    Rows whose text (or label) is empty or missing are dropped and counted in the log.
    Returns a DataFrame with exactly the requested columns, text as ``str``.
    """
    path = _arg.path('read_table', 'path', path)
    _arg.text('read_table', 'text_column', text_column)
    for name, value in (('label_column', label_column), ('encoding', encoding), ('sheet', sheet)):
        _arg.text('read_table', name, value, optional=True)
    path = os.fspath(path)
    frame = read_frame(path, encoding, sheet)
    columns = [text_column] + ([label_column] if label_column is not None else [])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f'{path}: no column {missing[0]!r}; the columns are {list(map(str, frame.columns))}')
    frame = frame[columns]
    usable = frame[text_column].map(_is_text)
    if label_column is not None:
        usable &= frame[label_column].map(lambda v: not is_missing(v) and str(v).strip() != '')
    dropped = int((~usable).sum())
    if dropped:
        logger.warning('%s: dropped %d of %d rows with empty or missing text/label', path, dropped, len(frame))
    frame = frame[usable].reset_index(drop=True)
    if frame.empty:
        raise DataError(f'{path}: no usable rows (all {dropped} rows have empty text or label)')
    frame[text_column] = frame[text_column].astype(str)
    for row, text in enumerate(frame[text_column]):
        check_text(text, f'{path}: row {row + 1}')
    return frame


def check_text(text, where):
    """sentencepiece accepts only text that encodes as UTF-8; lone surrogates do not."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as error:
        raise DataError(f'{where}: text is not valid Unicode ({error.reason} at character {error.start})') from None
    return text


def read_frame(path, encoding=None, sheet=None):
    """Every row and column of a TSV, CSV or XLSX file as text, parsed strictly (what read_table
    selects from; predict keeps all of it). Workbooks: one sheet, as :mod:`.tables` chooses it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f'{path}: no such file')
    return _read_any(path, encoding, sheet)


def _read_any(path, encoding, sheet):
    suffix = os.path.splitext(path)[1].lower()
    if os.path.getsize(path) == 0:
        raise DataError(f'{path}: the file is empty')
    if suffix in EXCEL_SUFFIXES:
        names, rows = read_workbook(path, sheet)
        header = _header(path, [None if is_missing(v) else _excel_text(v) for v in names])
        frame = pd.DataFrame(rows, columns=header, dtype=object)
        # Every cell as text, as the CSV reader gives it: a number typed into a text column
        # is still a sentence, and a label stored as 1.0 is the label 1.
        return frame.apply(lambda column: column.map(_excel_text))
    if sheet is not None:
        raise ConfigError(f'sheet={sheet!r}: {path} is not a workbook (.xlsx, .xls); only workbooks have sheets')
    text = _decode(path, encoding)
    return _parse_delimited(path, text, '\t' if suffix in TSV_SUFFIXES else ',')


def _decode(path, encoding):
    with open(path, 'rb') as source:
        raw = source.read()
    first = None
    for candidate in ([encoding] if encoding else CSV_ENCODINGS):
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError as error:
            first = first or error
        except LookupError:
            raise ConfigError(f'encoding={candidate!r}: not a known text encoding') from None
    tried = encoding or ', '.join(CSV_ENCODINGS)
    line = raw.count(b'\n', 0, first.start) + 1
    raise DataError(f'{path}: cannot decode the file as text (tried {tried}; first bad byte on line {line}); '
                    're-save it as UTF-8 (in a spreadsheet: "CSV UTF-8" or "Unicode text")')


def _parse_delimited(path, text, sep):
    """Rows of a TSV (no quoting: a tab always separates) or CSV (RFC 4180 quoting) file, read
    strictly: every row has exactly the header's number of fields, and no NUL bytes."""
    nul = text.find('\0')
    if nul >= 0:
        raise DataError(f'{path}: line {text.count(chr(10), 0, nul) + 1} contains a NUL byte (a binary file, or '
                        'text saved as UTF-16?); re-save it as UTF-8 text')
    dialect = dict(delimiter=sep, quoting=csv.QUOTE_NONE) if sep == '\t' else dict(delimiter=sep, strict=True)
    reader = csv.reader(io.StringIO(text, newline=''), **dialect)
    header, rows = None, []
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if header is None:
                header = _header(path, fields)
            elif len(fields) != len(header):
                raise DataError(f'{path}: line {reader.line_num} (data row {len(rows) + 1}) has {len(fields)} '
                                f'fields, the header {len(header)} ({_kind_of(sep)}); fix that row (a stray '
                                f'{"tab" if sep == chr(9) else "comma or quote"}?)')
            else:
                rows.append(fields)
    except csv.Error as error:
        raise DataError(f'{path}: cannot parse line {reader.line_num} ({error})') from None
    if header is None:
        raise DataError(f'{path}: no header row and no data (the file has no columns)')
    return pd.DataFrame(rows, columns=header, dtype=object)


def _kind_of(sep):
    return 'tab-separated' if sep == '\t' else 'comma-separated'


def _header(path, names):
    """Column names; an empty one is named as pandas names it, a repeated one is an error."""
    names = [f'Unnamed: {i}' if name is None or str(name).strip() == '' else str(name) for i, name in enumerate(names)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f'{path}: column name(s) {repeated} appear more than once in the header; '
                        'rename them so each column has its own name')
    return names


def _excel_text(value):
    if is_missing(value) or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value))


def _is_text(value):
    return isinstance(value, str) and value.strip() != ''


class LabelMap:
    """Label name <-> id, ids in sorted label order (공포 0, 놀람 1, ... 혐오 6).

    Numeric labels (NSMC's 0/1) sort as numbers, so id == the number when labels are 0..n-1.
    """

    def __init__(self, names):
        if isinstance(names, (str, bytes, dict)) or not hasattr(names, '__iter__'):
            raise ConfigError(f'LabelMap: names={names!r} must be a list of label names (LabelMap.from_values '
                              'reads them from labels)')
        self.names = [label_key(n) for n in names]
        self._ids = {name: i for i, name in enumerate(self.names)}
        if len(self._ids) != len(self.names):
            raise DataError(f'duplicate label names: {self.names}')

    @classmethod
    def from_values(cls, values):
        unique = {label_key(v) for v in values}
        numeric = all(is_integer_key(u) for u in unique)
        return cls(sorted(unique, key=int if numeric else None))

    def __len__(self):
        return len(self.names)

    def encode(self, values, source='labels'):
        ids = []
        for row, value in enumerate(values):
            key = label_key(value)
            if key not in self._ids:
                raise DataError(f'{source}: row {row}: unknown label {value!r}; known labels are {self.names}')
            ids.append(self._ids[key])
        return np.array(ids, dtype='int32')

    def decode(self, ids):
        """The names of label ids (integers from 0 to len - 1; numpy and MXNet arrays too)."""
        if hasattr(ids, 'asnumpy'):
            ids = ids.asnumpy()
        if isinstance(ids, (str, bytes, dict)) or not hasattr(ids, '__iter__'):
            raise ConfigError(f'LabelMap.decode: ids={ids!r} must be a list of label ids')
        names = []
        for position, i in enumerate(ids):
            if isinstance(i, (float, np.floating)) and float(i).is_integer():
                i = int(i)
            if not is_integer(i) or not 0 <= i < len(self.names):
                raise ConfigError(f'LabelMap.decode: ids[{position}]={i!r} is not a label id: ids go from 0 to '
                                  f'{len(self.names) - 1} ({len(self.names)} labels)')
            names.append(self.names[int(i)])
        return names

    def to_dict(self):
        return {name: i for i, name in enumerate(self.names)}

    def save(self, path):
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        mapping = read_json(path)
        ids = list(mapping.values()) if isinstance(mapping, dict) else [None]
        if not all(is_integer(i) for i in ids) or sorted(ids) != list(range(len(ids))):
            raise DataError(f'{path}: not a label map: expected {{"label name": id, ...}} with the ids 0 to n-1, '
                            f'got {type(mapping).__name__} {str(mapping)[:60]}')
        return cls(sorted(mapping, key=mapping.get))


def stratified_split(frame, label_column, test_size=0.2, seed=42):
    """Seeded split that keeps each label's share in both parts."""
    _arg.instance('stratified_split', 'frame', frame, pd.DataFrame, 'a pandas DataFrame')
    if not isinstance(label_column, str) or label_column not in frame.columns:
        raise ConfigError(f'stratified_split: label_column={label_column!r} is not a column of frame; '
                          f'the columns are {list(map(str, frame.columns))}')
    test_size = _arg.real('stratified_split', 'test_size', test_size, 0, 1)
    seed = _arg.integer('stratified_split', 'seed', seed, minimum=0, maximum=2 ** 32 - 1)
    keep, held = split_positions(frame[label_column], test_size, seed)
    return frame.iloc[keep].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)


def rows_digest(texts, labels, label_text=None):
    """sha256 of a set of (text, label) rows, independent of their order and of how the
    label is spelled (``label_text``, default label_key: 1 / 1.0 alike): the same rows in any
    file give the same digest."""
    label_text = label_text or label_key
    lines = sorted(f'{text}\t{label_text(label)}' for text, label in zip(texts, labels))
    return hashlib.sha256('\n'.join(lines).encode('utf-8', 'surrogatepass')).hexdigest()


def split_positions(labels, size, seed):
    """(kept, held out) row positions, both sorted; ``size`` of each label's rows is held out.

    The same labels, size and seed give the same positions on every machine.
    """
    if not 0 < size < 1:
        raise ConfigError(f'split size {size}: must be between 0 and 1')
    rng = np.random.RandomState(seed)
    keys = np.array([label_key(v) for v in labels], dtype=object)
    held = []
    for key in sorted(set(keys)):
        rows = np.flatnonzero(keys == key)
        rng.shuffle(rows)
        held.extend(rows[:int(round(len(rows) * size))])
    is_held = np.zeros(len(keys), dtype=bool)
    is_held[held] = True
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


class BERTDataset(Dataset):
    """KoBERT's notebook dataset: rows -> (token_ids, valid_length, segment_ids, label).

    ``dataset`` is a list of rows (lists/tuples) or a DataFrame; ``sent_idx`` and
    ``label_idx`` are positions in a row (or DataFrame column names). With ``pair=True``
    ``sent_idx`` names two columns. Tokenization happens once, here, as in the original.
    """

    def __init__(self, dataset, sent_idx, label_idx, bert_tokenizer, max_len, pad, pair):
        check_max_len(max_len, MAX_POSITIONS, 'BERTDataset')
        _arg.instance('BERTDataset', 'dataset', dataset, (list, tuple, pd.DataFrame, np.ndarray),
                      'a list of rows (lists or tuples) or a DataFrame')
        if len(dataset) == 0:
            raise DataError('BERTDataset: the dataset has no rows')
        check_dataset_arguments(dataset, sent_idx, bert_tokenizer, pad, pair)
        rows = _as_rows(dataset)
        sent_positions = _positions(dataset, sent_idx, pair)
        label_position = _positions(dataset, label_idx, False)[0] if label_idx is not None else None
        transform = nlp.data.BERTSentenceTransform(bert_tokenizer, max_seq_length=max_len, pad=pad, pair=pair)
        self.sentences = []
        self.labels = []
        # disable=None: a bar on a terminal, silence in logs and pipes.
        for row_number, row in enumerate(tqdm(rows, desc='tokenizing', total=len(dataset), leave=False,
                                              disable=None, mininterval=1)):
            sentences = [_sentence(row, row_number, p) for p in sent_positions]
            self.sentences.append(transform(sentences))
            if label_position is not None:
                self.labels.append(_label(row, row_number, label_position))

    def __getitem__(self, i):
        if self.labels:
            return self.sentences[i] + (self.labels[i],)
        return self.sentences[i]

    def __len__(self):
        return len(self.sentences)


def check_dataset_arguments(dataset, sent_idx, bert_tokenizer, pad, pair):
    """BERTDataset's arguments, each error naming the argument (a string dataset would be split into
    letters, a generator read once, an int sent_idx with pair=True indexed as two columns)."""
    if bert_tokenizer is None or not callable(bert_tokenizer):
        _arg.instance('BERTDataset', 'bert_tokenizer', bert_tokenizer, (), 'a tokenizer (kobert_gluon.get_bert_tokenizer)')
    _arg.flag('BERTDataset', 'pad', pad)
    _arg.flag('BERTDataset', 'pair', pair)
    if pair and (isinstance(sent_idx, str) or not isinstance(sent_idx, (list, tuple)) or len(sent_idx) != 2):
        _arg.instance('BERTDataset', 'sent_idx', sent_idx, (), 'two columns with pair=True, e.g. [0, 1]')
    if not pair and not (is_integer(sent_idx) or isinstance(sent_idx, str)):
        _arg.instance('BERTDataset', 'sent_idx', sent_idx, (), 'one column (a position or a DataFrame column name)')
    if not isinstance(dataset, pd.DataFrame):
        for row_number, row in enumerate(dataset):
            if not isinstance(row, (list, tuple, np.ndarray)):
                raise DataError(f'BERTDataset: row {row_number} is {type(row).__name__} ({str(row)[:40]!r}), not a '
                                'list of columns: pass rows such as [sentence, label]')


def check_max_len(max_len, positions, where):
    """max_len must leave room for one piece and fit the model's position table: positions
    past the table are silently clamped to its last row by MXNet's embedding lookup."""
    if not isinstance(max_len, numbers.Integral) or isinstance(max_len, bool):
        raise ConfigError(f'{where}: max_len={max_len!r} must be an integer')
    if not MIN_MAX_LEN <= max_len <= positions:
        raise ConfigError(f'{where}: max_len={max_len} must be between {MIN_MAX_LEN} and {positions} '
                          f'(the model has {positions} positions)')
    return max_len


def _as_rows(dataset):
    if isinstance(dataset, pd.DataFrame):
        return dataset.itertuples(index=False, name=None)
    return dataset


def _positions(dataset, index, pair):
    """Normalise column names/positions to row positions and check they exist."""
    indices = list(index) if pair else [index]
    if pair and len(indices) != 2:
        raise ConfigError(f'pair=True needs sent_idx with two columns, got {index!r}')
    if isinstance(dataset, pd.DataFrame):
        columns = list(dataset.columns)
        positions = [columns.index(i) if i in columns else i for i in indices]
        width = len(columns)
    else:
        positions = indices
        width = len(dataset[0]) if len(dataset) else 0
    for given, position in zip(indices, positions):
        if not isinstance(position, numbers.Integral) or not -width <= position < width:
            raise DataError(f'BERTDataset: column {given!r} is out of range for rows with {width} columns')
    return positions


def _sentence(row, row_number, position):
    value = _cell(row, row_number, position)
    if not isinstance(value, str):
        raise DataError(f'BERTDataset: row {row_number}, column {position}: sentence is '
                        f'{type(value).__name__} ({value!r}), expected str')
    return check_text(value, f'BERTDataset: row {row_number}, column {position}')


def _label(row, row_number, position):
    value = _cell(row, row_number, position)
    number = None
    if is_integer(value):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and is_integer_key(label_key(value)):
        number = int(label_key(value))
    if number is not None:
        if not INT32.min <= number <= INT32.max:
            raise DataError(f'BERTDataset: row {row_number}, column {position}: label {value!r} does not fit the '
                            f'int32 labels MXNet computes with ({INT32.min} to {INT32.max}); map labels to ids first')
        return np.int32(number)
    raise DataError(f'BERTDataset: row {row_number}, column {position}: label {value!r} is not an '
                    f'integer; map label names to ids first (kobert_gluon.data.LabelMap)')


def _cell(row, row_number, position):
    try:
        return row[position]
    except IndexError:
        raise DataError(f'BERTDataset: row {row_number} has {len(row)} columns, '
                         f'no column {position}') from None


def demo_data_path():
    """The embedded demo set: 600 Korean sentences labelled 긍정/부정."""
    return package_file('resources', DEMO_DATA)
