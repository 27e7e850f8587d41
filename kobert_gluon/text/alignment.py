"""KoBERT's pieces with their character spans in the original text, and entity tags per piece.

:class:`PieceAligner` gives exactly the pieces of gluonnlp's ``BERTSPTokenizer(spiece, vocab,
lower=False)`` (the notebooks' tokenizer), each with the characters ``start:end`` of the user's
text it came from. That tokenizer runs in two steps, and the spans follow both:

1. BERT's basic tokenizer (gluonnlp 0.10, cased): control characters and U+FFFD are dropped,
   whitespace splits words, CJK ideographs and punctuation become words of their own, the text
   is NFD-normalised and non-spacing marks (Mn) are dropped, even though KoBERT is cased (so
   ``é`` becomes ``e`` and a Hangul syllable becomes its jamo). :func:`basic_words` repeats this
   while remembering, for every character it keeps, the original character it came from.
2. SentencePiece encodes each word. It NFKC-normalises first (recomposing the jamo, turning
   ``㈜`` into ``(주)`` and ``…`` into ``...``) and reports each piece's characters in the word
   it was given. A character NFKC expands into several pieces gives all of its characters to
   the last of them; the others come back empty, and here they share that character's span.
   The lone ``▁`` SentencePiece puts before a word that starts with a piece it has no ``▁``
   form of (``▁``, ``.``) stands for no character: its span is empty (``start == end``), at the
   start of the word.

A piece's span is therefore never empty except for a lone ``▁``, never starts or ends on
whitespace, and pieces never share characters except pieces of one NFKC expansion. (A literal
``▁``, U+2581, in the text is a space to SentencePiece: no piece, or a lone ``▁``, covers it.)

Entity tags per piece (:func:`piece_tags`) use the first-character rule of KLUE's own
baseline: a piece takes the tag of its first character, and the first piece of an entity is
``B-``. The alternative, tagging the first piece of each word and ignoring the rest, fits
English words but not Korean ones, where an entity often ends inside an eojeol (``경찰은``: the
entity ``경찰`` and the particle ``은``): every piece keeps a tag, so an entity that starts
after the first piece of an eojeol is still tagged, and the loss learns from every piece.
"""
import functools
import unicodedata
from typing import NamedTuple

from ..errors import ConfigError
from .entities import OUTSIDE, EntitySpan, spans_from_tags
from .token_ids import _is_cjk, _is_punctuation

SPACE_MARK = '\u2581'  # SentencePiece's word-start mark
PROBE_WORD = '한국어'


class Piece(NamedTuple):
    piece: str  # as BERTSPTokenizer gives it ('▁경찰', '은', '▁')
    start: int  # characters start:end of the original text
    end: int


# ---------------------------------------------------------------------------- step 1: basic tokenizer

def basic_words(text):
    """gluonnlp 0.10's cased BERTBasicTokenizer, with origins: ``[(word, origins)]`` where
    ``origins[i]`` is the span ``(start, end)`` of ``text`` the character ``word[i]`` came from:
    one character, or more when marks the tokenizer dropped (Mn) combined with it."""
    words, word, origins = [], [], []

    def end_word():
        if word:
            words.append((''.join(word), list(origins)))
            word.clear()
            origins.clear()

    for char, origin in _without_marks(_canonical_order(_decomposed(text))):
        kind = _kind(char)
        if kind == ' ':
            end_word()
        elif kind == 'punctuation':
            end_word()
            words.append((char, [origin]))
        else:
            word.append(char)
            origins.append(origin)
    end_word()
    return words


@functools.lru_cache(maxsize=1 << 16)
def _parts(char):
    """What gluonnlp's first step and NFD make of one character: nothing (a control character),
    a space (whitespace), the ideograph between spaces (CJK), or its NFD decomposition."""
    category = unicodedata.category(char)
    if char in '\x00\ufffd' or (category in ('Cc', 'Cf') and char not in '\t\n\r'):
        return ()
    if char in ' \t\n\r' or category == 'Zs':
        return (' ',)
    if _is_cjk(ord(char)):
        return (' ',) + tuple(unicodedata.normalize('NFD', char)) + (' ',)
    return tuple(unicodedata.normalize('NFD', char))


@functools.lru_cache(maxsize=1 << 16)
def _kind(char):
    """One NFD character in gluonnlp's second step: ' ' (ends a word), 'mark' (Mn, dropped),
    'punctuation' (a word of its own) or 'letter'."""
    category = unicodedata.category(char)
    if char == ' ':
        return ' '
    if category == 'Mn':
        return 'mark'
    return 'punctuation' if _is_punctuation(ord(char), category) else 'letter'


def _decomposed(text):
    return [(part, origin) for origin, char in enumerate(text) for part in _parts(char)]


def _canonical_order(chars):
    """NFD of the whole text is each character's decomposition followed by the canonical ordering
    of every run of combining characters (a stable sort by combining class), which may cross
    characters of the text."""
    if not any(unicodedata.combining(char) for char, _ in chars):
        return chars
    ordered, run = [], []
    for item in chars + [(' ', None)]:
        if unicodedata.combining(item[0]):
            run.append(item)
            continue
        ordered += sorted(run, key=lambda pair: unicodedata.combining(pair[0]))
        run = []
        ordered.append(item)
    return ordered[:-1]


def _without_marks(chars):
    """``(char, (start, end))`` with the Mn characters dropped; a dropped mark that was a character
    of its own in the text joins the span of the character before it (if not a space)."""
    kept = []
    for char, origin in chars:
        if _kind(char) != 'mark':
            kept.append((char, (origin, origin + 1)))
        elif kept and kept[-1][0] != ' ':
            previous, (start, end) = kept[-1]
            kept[-1] = (previous, (min(start, origin), max(end, origin + 1)))
    return kept


# ---------------------------------------------------------------------------- step 2: SentencePiece

class PieceAligner:
    """BERTSPTokenizer's pieces of a text, each with its character span in that text::

        aligner = PieceAligner.from_tokenizer(tokenizer)       # or PieceAligner(spiece_path)
        aligner.pieces('경찰은 박씨를')  # [Piece('▁경찰은', 0, 3), Piece('▁박', 4, 5), ...]
    """

    def __init__(self, sentencepiece_path):
        import sentencepiece

        self.path = str(sentencepiece_path)
        self.processor = sentencepiece.SentencePieceProcessor(model_file=self.path)
        self._offset_mapping = self._has_offset_mapping()
        _, offsets = self.encode_word(PROBE_WORD)
        if offsets[-1][1] != len(PROBE_WORD):  # every known version counts characters for str input
            raise RuntimeError(f'sentencepiece {sentencepiece.__version__} reports piece offsets in another unit '
                               f'than characters ({offsets} for {PROBE_WORD!r})')

    @classmethod
    def from_tokenizer(cls, tokenizer):
        """From a gluonnlp ``BERTSPTokenizer`` (its SentencePiece file); it must be cased, as KoBERT's."""
        if tokenizer.basic_tokenizer.tokenizer.lower:
            raise ConfigError('the tokenizer lower-cases (lower=True); KoBERT and these spans need lower=False')
        return cls(tokenizer._path)

    def _has_offset_mapping(self):
        try:  # sentencepiece >= 0.2.1; 0.1.99-0.2.0 give the same offsets through 'immutable_proto'
            return isinstance(self.processor.encode('a', out_type='offset_mapping'), dict)
        except (RuntimeError, ValueError, TypeError):
            return False

    def encode_word(self, word):
        """``(pieces, offsets)``: SentencePiece's pieces of one word and their character offsets in it."""
        if self._offset_mapping:
            result = self.processor.encode(word, out_type='offset_mapping')
            return result['pieces'], result['offsets']
        proto = self.processor.encode(word, out_type='immutable_proto')
        return [piece.piece for piece in proto.pieces], [(piece.begin, piece.end) for piece in proto.pieces]

    def pieces(self, text):
        """Every piece of ``text`` with its span; the pieces are BERTSPTokenizer's, in order."""
        return [piece for word, origins in basic_words(text) for piece in self.word_pieces(word, origins, text)]

    def word_pieces(self, word, origins, text):
        """The pieces of one word of :func:`basic_words`, with their spans in ``text``."""
        pieces = self.processor.encode(word, out_type=str)
        start, end = origins[0][0], origins[-1][1]
        if ''.join(pieces).replace(SPACE_MARK, '') == text[start:end]:
            # SentencePiece gave back the text's own characters (NFKC only recomposed what NFD
            # split): each piece holds the next characters, as many as it has.
            return _consecutive_pieces(pieces, start)
        return self.mapped_word_pieces(word, origins)

    def mapped_word_pieces(self, word, origins):
        """:meth:`word_pieces` through SentencePiece's own offsets (any normalisation)."""
        pieces, offsets = self.encode_word(word)
        spans = [_span(origins, begin, end) for begin, end in offsets]
        for index in range(len(pieces) - 1, -1, -1):
            if spans[index] is None and pieces[index].strip(SPACE_MARK):
                # part of an NFKC expansion: a later piece holds the expanded character
                spans[index] = next((span for span in spans[index + 1:] if span), None)
        first = next((span[0] for span in spans if span), origins[0][0])
        return [Piece(piece, *(span or (first, first))) for piece, span in zip(pieces, spans)]


def _consecutive_pieces(pieces, start):
    result = []
    for piece in pieces:
        length = len(piece.lstrip(SPACE_MARK))
        result.append(Piece(piece, start, start + length))
        start += length
    return result


def _span(origins, begin, end):
    """Original characters of word[begin:end], None for none; NFD ordering can move a mark,
    hence min and max."""
    if end <= begin:
        return None
    return min(start for start, _ in origins[begin:end]), max(end for _, end in origins[begin:end])


# ---------------------------------------------------------------------------- tags per piece

def piece_tags(pieces, entities):
    """IOB2 tag of every piece: the tag of its first character, the first piece of an entity ``B-``.

    A lone ``▁`` has no character: inside an entity (between two of its pieces) it is ``I-X``,
    anywhere else ``O`` (as KLUE's baseline tags it), so an entity's ``B-`` is on its first piece
    with characters. An entity no piece starts in (it starts inside a piece) gets no tag; one
    that ends inside a piece takes all of that piece. docs/ner.md counts both on KLUE-NER.
    """
    entity_at = {}
    for number, (start, end, label) in enumerate(entities):
        for char in range(start, end):
            entity_at[char] = (number, label)
    tags, previous = [], None
    for piece in pieces:
        found = entity_at.get(piece.start)
        if piece.end == piece.start:  # a lone ▁: its position is the next piece's first character
            tags.append('I-' + found[1] if found and found[0] == previous else OUTSIDE)
            continue
        tags.append(OUTSIDE if found is None else ('I-' if found[0] == previous else 'B-') + found[1])
        previous = found[0] if found else None
    return tags


def character_tags(pieces, tags, length):
    """Per character of the text, the tag its pieces give it, as KLUE's baseline spreads a
    piece's prediction over its characters: the piece's tag on its first character, ``I-X`` (or
    ``O``) on the others. A character in several pieces (an NFKC expansion) takes the first;
    one in none (whitespace, a dropped control character) is ``O``."""
    result = [None] * length
    for piece, tag in zip(pieces, tags):
        inside = OUTSIDE if tag == OUTSIDE else 'I-' + tag[2:]
        for char in range(piece.start, piece.end):
            if result[char] is None:
                result[char] = tag if char == piece.start else inside
    return [tag or OUTSIDE for tag in result]


def entities_from_piece_tags(pieces, tags):
    """Character spans of the entities in IOB2 piece tags (seqeval's strict reading: an ``I-X``
    that continues no ``X`` belongs to no entity). An entity runs from its first piece's start to
    its last piece's end; lone ``▁`` pieces add no characters, and an entity of only those is
    dropped. Piece spans never start or end on whitespace, so neither do these."""
    entities = []
    for first, last, label in spans_from_tags(tags):
        spans = [(p.start, p.end) for p in pieces[first:last] if p.end > p.start]
        if spans:
            entities.append(EntitySpan(min(s for s, _ in spans), max(e for _, e in spans), label))
    return entities


def entity_round_trip(aligner, sentences):
    """How many gold entities survive characters -> piece tags -> characters, per type.

    ``{type: {'gold', 'kept', 'start_inside', 'end_inside'}}``: ``kept`` come back with the same
    start, end and type; the others start inside a piece (a piece begins before the entity and
    runs into it) or end inside one (the piece runs past the entity, as ``경찰은`` past ``경찰``).
    """
    counts = {}
    for sentence in sentences:
        pieces = aligner.pieces(sentence.text)
        kept = set(entities_from_piece_tags(pieces, piece_tags(pieces, sentence.entities)))
        starts = {piece.start for piece in pieces if piece.end > piece.start}
        ends = {piece.end for piece in pieces if piece.end > piece.start}
        for entity in sentence.entities:
            row = counts.setdefault(entity.label, dict(gold=0, kept=0, start_inside=0, end_inside=0))
            row['gold'] += 1
            row['kept'] += entity in kept
            row['start_inside'] += entity not in kept and entity.start not in starts
            row['end_inside'] += entity not in kept and entity.end not in ends
    return dict(sorted(counts.items()))
