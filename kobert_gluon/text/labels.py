"""One spelling per label: labels a reader sees as the same label are one class.

A label cell is read as its key (:func:`label_key`):

- Unicode NFC (Hangul typed as jamo, NFD, is the same 긍정 as the precomposed syllables);
- invisible characters removed (zero-width space and joiners, the byte-order mark, soft hyphen:
  every Unicode format character, category Cf) and surrounding whitespace stripped;
- a number in canonical form: Unicode decimal digits as ASCII (full-width ``１`` is ``1``),
  ``01`` is ``1``, ``-0`` is ``0``, ``1_000`` is ``1000``, ``1.0`` and ``1e0`` are ``1``, ``0.50``
  is ``0.5``. Only real decimal digits (category Nd) count: ``²`` or ``½`` are not numbers.

:func:`check_label_column` then refuses, naming the rows, what would still be read wrong: a label
that looks like a number but is not one (``nan``, ``inf``, ``²``) among numbers, and two labels
that differ only in case, width or inner spacing (``Pos`` / ``pos``, ``Ａ`` / ``A``). What was
merged is logged. Labels already in one spelling (``0``/``1``, ``긍정``/``부정``) keep their keys.
"""
import collections
import logging
import numbers
import re
import unicodedata
from decimal import Decimal, InvalidOperation

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)

# Python's own number syntax (underscores between digits); \d is any Unicode decimal digit (Nd).
DIGITS = r'\d+(?:_\d+)*'
NUMBER = re.compile(rf'[+-]?(?:{DIGITS}\.?(?:{DIGITS})?|\.{DIGITS})(?:[eE][+-]?{DIGITS})?')
# Signs as a reader sees them: full-width and typographic minus and plus are ASCII ones.
SIGNS = str.maketrans({'\uff0d': '-', '\u2212': '-', '\u2012': '-', '\u2013': '-', '\ufe63': '-', '\uff0b': '+'})
ASCII_INTEGER = re.compile(r'-?[0-9]+')
# Spellings that read as numbers but are none: refused among numeric labels.
NOT_NUMBERS = ('nan', 'inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity', 'none', 'null', 'na', 'n/a')


def clean_text(text):
    """NFC, without format (invisible) characters, stripped."""
    text = unicodedata.normalize('NFC', str(text))
    return ''.join(char for char in text if unicodedata.category(char) != 'Cf').strip()


def canonical_number(text):
    """The canonical spelling of ``text`` as a number ('01' -> '1', '１' -> '1', '0.50' -> '0.5'),
    else None. ``text`` is :func:`clean_text`'s."""
    text = text.translate(SIGNS)
    if not text or not any(char.isdecimal() for char in text) or not NUMBER.fullmatch(text):
        return None
    ascii_text = ''.join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text)
    try:
        number = Decimal(ascii_text.replace('_', ''))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number == number.to_integral_value():
        return str(int(number))  # -0 -> 0
    return repr(float(number))


def label_key(value):
    """The one spelling of a label value: integers (1, np.int64(1)) and integral floats (1.0 from
    XLSX) as '1', numbers in canonical form, other labels :func:`clean_text`."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    text = clean_text(value)
    number = canonical_number(text)
    return text if number is None else number


def is_integer_key(key):
    """Whether a :func:`label_key` is an integer (labels that are all integers sort as numbers)."""
    return bool(ASCII_INTEGER.fullmatch(key))


def _looks_numeric(text):
    """A label that a reader may take for a number but that is none: nan, inf, ², ½, Ⅳ."""
    return text.lower() in NOT_NUMBERS or any(not char.isdecimal() and unicodedata.numeric(char, None) is not None
                                              for char in text)


def _rows(rows):
    rows = sorted(rows)
    return ', '.join(map(str, rows[:5])) + (f' and {len(rows) - 5} more' if len(rows) > 5 else '')


def check_label_column(values, source, column):
    """Each value's :func:`label_key`, checked as a column (rows count from 1): refuses non-numbers
    among numbers and labels differing only in case, width or spacing; logs what was merged."""
    keys = [label_key(value) for value in values]
    rows = collections.defaultdict(list)
    spellings = collections.defaultdict(set)
    for row, (value, key) in enumerate(zip(values, keys), start=1):
        rows[key].append(row)
        if isinstance(value, str):
            spellings[key].add(value)
    numeric = [key for key in rows if canonical_number(key) is not None]
    odd = [key for key in rows if canonical_number(key) is None and _looks_numeric(key)]
    if numeric and odd:
        raise DataError(f'{source}: column {column!r}: label {odd[0]!r} (row(s) {_rows(rows[odd[0]])}) is not a '
                        f'number, but the other labels are numbers such as {numeric[0]!r}; fix or remove those rows')
    _refuse_lookalikes(rows, source, column)
    for key, seen in spellings.items():
        if len(seen) > 1 or (seen and seen != {key}):
            logger.log(logging.WARNING if len(seen) > 1 else logging.INFO, '%s: column %r: label(s) %s read as %r (%d rows): one label (NFC, invisible characters and '
                        'surrounding spaces removed, numbers in one spelling)', source, column,
                        ', '.join(map(ascii, sorted(seen))), key, len(rows[key]))
    return keys


def _refuse_lookalikes(rows, source, column):
    groups = collections.defaultdict(list)
    for key in rows:
        groups[' '.join(unicodedata.normalize('NFKC', key).casefold().split())].append(key)
    for keys in groups.values():
        if len(keys) > 1:
            first, second = sorted(keys)[:2]
            raise DataError(f'{source}: column {column!r}: labels {first!r} (row(s) {_rows(rows[first])}) and '
                            f'{second!r} (row(s) {_rows(rows[second])}) differ only in case, width or spacing; '
                            'write each label one way')
