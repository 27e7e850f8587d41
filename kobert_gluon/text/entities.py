"""Reading named-entity data: KLUE's character TSV, CoNLL-style token columns, and JSONL spans.

Every reader returns :class:`EntitySentence` rows: the sentence ``text`` and its entities as
character spans (``start``, ``end`` exclusive, ``label`` the entity type such as ``PS``), with
the file and line the sentence came from. Tags follow strict IOB2: ``B-X`` starts an entity,
``I-X`` continues one (it must follow ``B-X`` or ``I-X``), ``O`` is outside. Anything
malformed is a :class:`~kobert_gluon.errors.DataError` whose message names the file and line.

- ``klue``: KLUE-NER's own format. ``##`` comment lines; per sentence a
  ``## <id>\\t<sentence with <entity:TYPE> marks>`` line, one ``character\\ttag`` line per
  character (a space is a character too), and a blank line. The marked sentence must be exactly
  what the character lines give when each entity is written as ``<text:TYPE>``.
- ``conll``: one token per line, its tag in the last column (tab- or space-separated, the same
  number of columns on every line), blank lines between sentences, ``-DOCSTART-`` skipped. The
  text is the tokens joined by single spaces.
- ``jsonl``: one ``{"text": ..., "entities": [{"start": s, "end": e, "label": T}, ...]}`` per line.
"""
import json
import os
import re
from typing import NamedTuple, Optional, Tuple

from ..errors import ConfigError, DataError
from .data import _decode, check_text

ENTITY_FORMATS = ('klue', 'conll', 'jsonl')
JSONL_SUFFIXES = ('.jsonl', '.json', '.ndjson')
CONLL_SUFFIXES = ('.conll', '.conll03', '.iob', '.bio')
OUTSIDE = 'O'
DOCSTART = '-DOCSTART-'
TAG_PATTERN = re.compile(r'([BI])-(\S+)')
LABEL_PATTERN = re.compile(r'\S+')
MARK_PATTERN = re.compile(r'<([^<>]*):(\w+)>')
KLUE_SENTENCE_LINE = re.compile(r'## ?(\S+)\t(.*)')  # '## <id>\t<marked sentence>'; header comments have spaces


class EntitySpan(NamedTuple):
    """One entity: characters ``start`` to ``end`` (exclusive) of its sentence, of type ``label``."""
    start: int
    end: int
    label: str


class EntitySentence(NamedTuple):
    text: str
    entities: Tuple[EntitySpan, ...]  # sorted, non-overlapping
    path: str
    line: int  # where the sentence starts (1-based)
    id: Optional[str] = None  # KLUE's sentence id

    @property
    def where(self):
        return f'{self.path}: line {self.line}'


# ---------------------------------------------------------------------------- tags <-> spans

def parse_tag(tag):
    """``(prefix, label)`` of an IOB2 tag: ``('O', None)``, ``('B', 'PS')`` or ``('I', 'PS')``;
    None when ``tag`` is not in the scheme."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    match = TAG_PATTERN.fullmatch(tag)
    return (match.group(1), match.group(2)) if match else None


def tags_from_spans(length, spans):
    """Character (or token) IOB2 tags of a sequence of ``length`` items holding ``spans``."""
    tags = [OUTSIDE] * length
    for start, end, label in spans:
        tags[start:end] = [f'B-{label}'] + [f'I-{label}'] * (end - start - 1)
    return tags


def spans_from_tags(tags):
    """Entities of an IOB2 tag sequence, as seqeval's strict IOB2 mode finds them.

    An entity starts at every ``B-X`` and runs over the ``I-X`` right after it. An ``I-X`` that
    does not continue an entity of type X (after ``O``, or after another type) belongs to no
    entity, and neither does a tag outside the scheme. ``spans`` index the ``tags``.
    """
    spans, current = [], None
    for index, tag in enumerate(tags):
        prefix, label = parse_tag(tag) or (None, None)
        if current is not None and prefix == 'I' and label == current[2]:
            current[1] = index + 1
            continue
        if current is not None:
            spans.append(EntitySpan(*current))
        current = [index, index + 1, label] if prefix == 'B' else None
    if current is not None:
        spans.append(EntitySpan(*current))
    return spans


def marked_text(text, spans):
    """The sentence as KLUE writes it: each entity as ``<text:TYPE>``."""
    parts, position = [], 0
    for start, end, label in sorted(spans):
        parts += [text[position:start], '<', text[start:end], ':', label, '>']
        position = end
    return ''.join(parts + [text[position:]])


# ---------------------------------------------------------------------------- reading

def read_entity_file(path, format=None, encoding=None):
    """Every sentence of a named-entity file, as :class:`EntitySentence` rows.

    ``format`` is one of :data:`ENTITY_FORMATS`; when None it comes from the suffix (``.jsonl``,
    ``.json``: jsonl; ``.conll``: conll) or else the first non-blank line (``{``: jsonl, ``##``:
    klue, anything else: conll). The file is UTF-8 (or cp949), as :func:`read_table` reads it.
    """
    path = os.fspath(path)
    if format is not None and format not in ENTITY_FORMATS:
        raise ConfigError(f'format={format!r}: expected one of {list(ENTITY_FORMATS)}')
    if not os.path.isfile(path):
        raise DataError(f'{path}: no such file')
    if os.path.getsize(path) == 0:
        raise DataError(f'{path}: the file is empty')
    lines = [line[:-1] if line.endswith('\r') else line for line in _decode(path, encoding).split('\n')]
    format = format or detect_entity_format(path, lines)
    sentences = {'klue': _read_klue, 'conll': _read_conll, 'jsonl': _read_jsonl}[format](path, lines)
    if not sentences:
        raise DataError(f'{path}: no sentences found (read as {format})')
    return sentences


def detect_entity_format(path, lines):
    suffix = os.path.splitext(path)[1].lower()
    if suffix in JSONL_SUFFIXES:
        return 'jsonl'
    if suffix in CONLL_SUFFIXES:
        return 'conll'
    first = next((line for line in lines if line.strip()), '')
    if first.lstrip().startswith('{'):
        return 'jsonl'
    return 'klue' if first.startswith('##') else 'conll'


def check_label(label, where):
    """An entity type as JSONL gives it: a bare type (``PS``), not an IOB2 tag or ``O``."""
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise DataError(f'{where}: "label" must be an entity type such as "PS" (text without spaces), '
                        f'found {label!r}')
    if label == OUTSIDE or TAG_PATTERN.fullmatch(label):
        raise DataError(f'{where}: "label" is {label!r}, a tag; give the entity type alone '
                        f'(such as "PS"), not B-/I-/O')
    return label


def check_tag(tag, previous, where):
    """``tag`` is in strict IOB2 after ``previous`` (a tag, or None at a sentence start)."""
    parsed = parse_tag(tag)
    if parsed is None:
        raise DataError(f'{where}: tag {tag!r} is not in the IOB2 scheme (expected O, B-TYPE or I-TYPE)')
    prefix, label = parsed
    if prefix == 'I' and previous not in (f'B-{label}', f'I-{label}'):
        after = f'follows {previous}' if previous else 'starts the sentence'
        hint = '; an IOB1 file (I- first) needs converting to IOB2' if previous in (None, OUTSIDE) else ''
        raise DataError(f'{where}: tag {tag} starts an entity (strict IOB2: I-{label} must follow B-{label} '
                        f'or I-{label}; here it {after}){hint}')
    return tag


def check_spans(spans, length, where):
    """Sorted spans, each inside ``0..length`` and none overlapping another."""
    for index, (start, end, label) in enumerate(spans):
        if not (0 <= start < end <= length):
            raise DataError(f'{where}: entity {index + 1} ({start}-{end} {label}) is outside the text, which '
                            f'has {length} characters (0 <= start < end <= {length}, end exclusive)')
    ordered = sorted(spans)
    for before, after in zip(ordered, ordered[1:]):
        if after.start < before.end:
            raise DataError(f'{where}: entities {before.start}-{before.end} {before.label} and '
                            f'{after.start}-{after.end} {after.label} overlap')
    return tuple(ordered)


def check_sentence_text(text, where):
    if not text.strip():
        raise DataError(f'{where}: the sentence has no characters (empty or only spaces)')
    return check_text(text, where)


# ---------------------------------------------------------------------------- KLUE

class _KlueBlock:
    """The lines of one KLUE sentence as they are read."""

    def __init__(self):
        self.header_line, self.id, self.marked = None, None, None
        self.chars, self.tags, self.numbers = [], [], []

    def sentence(self, path):
        if not self.chars:
            raise DataError(f'{path}: line {self.header_line}: sentence {self.id} has no character lines')
        first = self.header_line or self.numbers[0]
        text = check_sentence_text(''.join(self.chars), f'{path}: line {first}')
        spans = tuple(spans_from_tags(self.tags))
        if self.marked is not None and marked_text(text, spans) != self.marked:
            _explain_klue_mismatch(path, self, text, spans)
        return EntitySentence(text, spans, path, first, self.id)


def _read_klue(path, lines):
    sentences, block = [], _KlueBlock()
    for number, line in enumerate(lines, 1):
        if not line.strip() or (line.startswith('##') and block.chars):
            if block.chars or block.header_line:
                sentences.append(block.sentence(path))
            block = _KlueBlock()
            if not line.strip():
                continue
        if line.startswith('##'):
            _klue_comment(path, number, line, block)
        else:
            _klue_character(path, number, line, block)
    if block.chars or block.header_line:
        sentences.append(block.sentence(path))
    return sentences


def _klue_comment(path, number, line, block):
    match = KLUE_SENTENCE_LINE.fullmatch(line)
    if match is None:
        return  # a comment (the file's header)
    if block.header_line is not None:
        raise DataError(f'{path}: line {block.header_line}: sentence {block.id} has no character lines '
                        f'(line {number} starts the next sentence)')
    block.header_line, block.id, block.marked = number, match.group(1), match.group(2)


def _klue_character(path, number, line, block):
    where = f'{path}: line {number}'
    fields = line.split('\t')
    if len(fields) != 2:
        raise DataError(f'{where}: expected a character and its tag separated by one tab, found '
                        f'{len(fields)} field{"s" if len(fields) != 1 else ""}')
    char, tag = fields
    if len(char) != 1:
        raise DataError(f'{where}: expected one character before the tab, found {len(char)} ({char!r})')
    check_tag(tag, block.tags[-1] if block.tags else None, where)
    block.chars.append(char)
    block.tags.append(tag)
    block.numbers.append(number)


def _explain_klue_mismatch(path, block, text, spans):
    """Name the character line where the marked sentence and the character lines part."""
    where = f'{path}: line {block.header_line}'
    unmarked, marked_spans = parse_marked_text(block.marked)
    if unmarked != text:
        index = next((i for i, (a, b) in enumerate(zip(unmarked, text)) if a != b), min(len(unmarked), len(text)))
        line = block.numbers[min(index, len(block.numbers) - 1)]
        raise DataError(f'{where}: the marked sentence and the character lines differ at character {index} '
                        f'(line {line}): {unmarked[index:index + 10]!r} vs {text[index:index + 10]!r}')
    differing = sorted(set(marked_spans) ^ set(spans))
    if not differing:  # the marks read another way ('<<x:PS>>'), and that way does not fit the tags either
        raise DataError(f'{where}: the entity marks {block.marked!r} do not write the entities of the character '
                        f'lines, which give {marked_text(text, spans)!r}')
    span = differing[0]
    first, second = ('marks', 'tags') if span in marked_spans else ('tags', 'marks')
    raise DataError(f'{where}: the entity marks disagree with the tags of the character lines at line '
                    f'{block.numbers[span.start]}: the {first} have {text[span.start:span.end]!r} as {span.label}, '
                    f'the {second} do not')


def parse_marked_text(marked):
    """``(text, spans)`` of a KLUE marked sentence, each ``<x:TYPE>`` read as entity x (the last ``:``
    separates the type). A literal ``<`` next to a mark makes this ambiguous (``<<x:PS>>``): the
    reader checks marks by writing the tags' entities instead (:func:`marked_text`)."""
    parts, spans, position, length = [], [], 0, 0
    for match in MARK_PATTERN.finditer(marked):
        before = marked[position:match.start()]
        start = length + len(before)
        parts += [before, match.group(1)]
        length = start + len(match.group(1))
        spans.append(EntitySpan(start, length, match.group(2)))
        position = match.end()
    return ''.join(parts + [marked[position:]]), spans


# ---------------------------------------------------------------------------- CoNLL

def _read_conll(path, lines):
    sentences, tokens, tags, first, columns = [], [], [], None, None
    for number, line in enumerate(lines + [''], 1):
        fields = (line.split('\t') if '\t' in line else line.split()) if line.strip() else []
        if not fields or fields[0].strip() == DOCSTART:
            if tokens:
                sentences.append(_conll_sentence(path, first, tokens, tags))
            tokens, tags = [], []
            continue
        where = f'{path}: line {number}'
        fields = [field.strip() for field in fields]
        if len(fields) < 2:
            raise DataError(f'{where}: expected a token and its tag (the last column), found one field')
        columns = columns or (len(fields), number)
        if len(fields) != columns[0]:
            raise DataError(f'{where}: has {len(fields)} fields, but line {columns[1]} has {columns[0]} (every '
                            'token line needs the same columns, the tag last)')
        if not fields[0]:
            raise DataError(f'{where}: the token (first column) is empty')
        first = number if not tokens else first
        tags.append(check_tag(fields[-1], tags[-1] if tags else None, where))
        tokens.append(fields[0])
    return sentences


def _conll_sentence(path, first, tokens, tags):
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    text = check_sentence_text(' '.join(tokens), f'{path}: line {first}')
    spans = tuple(EntitySpan(starts[start], starts[end - 1] + len(tokens[end - 1]), label)
                  for start, end, label in spans_from_tags(tags))
    return EntitySentence(text, spans, path, first)


# ---------------------------------------------------------------------------- JSONL

def _read_jsonl(path, lines):
    sentences = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            sentences.append(_jsonl_sentence(path, number, line))
    return sentences


def _jsonl_sentence(path, number, line):
    where = f'{path}: line {number}'
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f'{where}: not valid JSON ({error.msg} at column {error.colno})') from None
    if not isinstance(record, dict):
        raise DataError(f'{where}: expected a JSON object {{"text": ..., "entities": [...]}}, '
                        f'found {type(record).__name__}')
    text, entities = record.get('text'), record.get('entities')
    if not isinstance(text, str):
        raise DataError(f'{where}: "text" must be a string, found {type(text).__name__}')
    check_sentence_text(text, where)
    if not isinstance(entities, list):
        raise DataError(f'{where}: "entities" must be a list of {{"start", "end", "label"}} objects '
                        f'(an empty list for none), found {type(entities).__name__}')
    spans = [_jsonl_entity(entity, f'{where}: entity {index + 1}') for index, entity in enumerate(entities)]
    return EntitySentence(text, check_spans(spans, len(text), where), path, number, record.get('id'))


def _jsonl_entity(entity, where):
    if not isinstance(entity, dict) or any(key not in entity for key in ('start', 'end', 'label')):
        raise DataError(f'{where}: expected an object with "start", "end" and "label", found {entity!r}')
    for key in ('start', 'end'):
        if isinstance(entity[key], bool) or not isinstance(entity[key], int):
            raise DataError(f'{where}: "{key}" must be a whole number (a character offset), found {entity[key]!r}')
    return EntitySpan(entity['start'], entity['end'], check_label(entity['label'], where))
