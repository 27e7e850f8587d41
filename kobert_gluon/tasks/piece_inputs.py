"""What a token-classification model reads: a sentence's pieces (with their character spans,
:class:`~kobert_gluon.text.alignment.PieceAligner`) as ``[CLS] pieces [SEP]`` windows, and the
per-piece targets of its entities.

A sentence longer than ``max_len - 2`` pieces is either cut after them (``stride`` 0: the
pieces after the cut are neither trained on nor predicted, and :class:`Truncation` counts the
sentences and entities cut), or split, as transformers' tokenizers do with ``stride``, into
windows of ``max_len - 2`` pieces each overlapping the one before by ``stride`` pieces; every
piece is then in some window. A prediction takes each piece's outputs from the window where it
lies farthest from an edge (:func:`merge_windows`), so a piece at the edge of one window is
read from the next, where it has context on both sides.

Targets: the tag id of each piece (the first-character rule, :func:`piece_tags`) and
:data:`IGNORE` on ``[CLS]``, ``[SEP]`` and padding, which the loss leaves out.
"""
import collections
import logging

import numpy as np

from ..text.alignment import piece_tags
from .inputs import Encoded

logger = logging.getLogger(__name__)

IGNORE = -1  # the target of [CLS], [SEP] and padding: no loss, not scored

Window = collections.namedtuple('Window', 'sentence start end encoded')  # pieces start:end of a sentence


def piece_windows(num_pieces, width, stride):
    """``[(start, end)]`` piece ranges of one sentence: one window when it fits (or ``stride`` is
    0: the first ``width`` pieces), else windows of ``width`` starting every ``width - stride``."""
    if num_pieces <= width or not stride:
        return [(0, min(num_pieces, width))]
    ranges, start = [], 0
    while True:
        end = min(start + width, num_pieces)
        ranges.append((start, end))
        if end == num_pieces:
            return ranges
        start = end - stride


def encode_window(vocab, pieces, max_len, pad):
    """``[CLS] pieces [SEP]`` as :class:`Encoded` (int32 arrays), padded to ``max_len`` if ``pad``."""
    ids = [vocab[vocab.cls_token]] + vocab[[piece.piece for piece in pieces]] + [vocab[vocab.sep_token]]
    width = max_len if pad else len(ids)
    token_ids = np.full(width, vocab[vocab.padding_token], dtype=np.int32)
    token_ids[:len(ids)] = ids
    return Encoded(token_ids, np.int32(len(ids)), np.zeros(width, dtype=np.int32))


def window_targets(tag_ids, start, end, width, pad):
    """Targets of one window: IGNORE, the pieces' tag ids, IGNORE (then IGNORE padding)."""
    targets = np.full(width if pad else end - start + 2, IGNORE, dtype=np.int32)
    targets[1:end - start + 1] = tag_ids[start:end]
    return targets


def encode_sentence(vocab, pieces, max_len, stride, pad, sentence=0):
    """Every :class:`Window` of one sentence's pieces."""
    return [Window(sentence, start, end, encode_window(vocab, pieces[start:end], max_len, pad))
            for start, end in piece_windows(len(pieces), max_len - 2, stride)]


class Truncation:
    """Sentences and entities cut by ``max_len`` (stride 0): counted, logged, recorded."""

    def __init__(self):
        self.sentences = self.cut_sentences = self.entities = self.cut_entities = 0

    def add(self, pieces, entities, kept):
        self.sentences += 1
        self.entities += len(entities)
        if kept < len(pieces):
            self.cut_sentences += 1
            limit = pieces[kept - 1].end if kept else 0
            self.cut_entities += sum(end > limit for _, end, _ in entities)

    def to_dict(self):
        return {'sentences': self.sentences, 'cut_sentences': self.cut_sentences,
                'entities': self.entities, 'cut_entities': self.cut_entities}

    def log(self, max_len, source):
        if self.cut_sentences:
            logger.warning('%s: max_len %d cut %d of %d sentences and %d of %d entities (their pieces after the '
                           'cut are not trained on); a larger --max_len or --stride keeps them', source, max_len,
                           self.cut_sentences, self.sentences, self.cut_entities, self.entities)


def encode_tagged(aligner, vocab, texts, entities, tag_index, max_len, stride, pad):
    """``(windows, targets, truncation)`` of training sentences (``entities``: their spans)."""
    windows, targets, truncation = [], [], Truncation()
    for number, (text, spans) in enumerate(zip(texts, entities)):
        pieces = aligner.pieces(text)
        tag_ids = np.array([tag_index[tag] for tag in piece_tags(pieces, spans)], dtype=np.int32)
        found = encode_sentence(vocab, pieces, max_len, stride, pad, number)
        truncation.add(pieces, spans, max(window.end for window in found))
        windows += found
        targets += [window_targets(tag_ids, window.start, window.end, max_len, pad) for window in found]
    return windows, targets, truncation


def merge_windows(num_pieces, windows, outputs):
    """One sentence's per-piece outputs (``num_pieces`` rows) from its windows' outputs (each
    window's rows for its pieces, [CLS] and [SEP] left out): each piece from the window where it
    is farthest from an edge, the earlier window on a tie."""
    if len(windows) == 1:
        return outputs[0][:num_pieces]
    merged = np.zeros((num_pieces,) + outputs[0].shape[1:], dtype=outputs[0].dtype)
    depth = np.full(num_pieces, -1)
    for window, rows in zip(windows, outputs):
        for offset in range(window.end - window.start):
            piece = window.start + offset
            distance = min(offset, window.end - window.start - 1 - offset)
            if distance > depth[piece]:
                depth[piece], merged[piece] = distance, rows[offset]
    return merged
