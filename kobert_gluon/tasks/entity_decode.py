"""Entities from per-piece probabilities, grouped as transformers' token-classification pipeline
groups them with ``aggregation_strategy='simple'``, with offsets into the user's original text.

The pipeline (transformers 5.24, ``pipelines/token_classification.py``) does, per text:

1. per token (special tokens left out): the softmax of its logits; its tag is the argmax's
   label, its score that maximum probability;
2. ``group_entities``: walking the tokens in order, a token joins the current group when its
   type (the tag without ``B-``/``I-``; a tag in neither form is its own type, ``O`` included)
   equals the type of the group's last token and its tag does not start with ``B-``. So an
   ``I-X`` after ``O`` or after another type starts an entity (unlike seqeval's strict reading,
   which drops it), ``B-X B-X`` are two entities, and ``O`` tokens form groups too;
3. each group: ``entity_group`` the first token's type, ``score`` the mean of its tokens'
   scores, ``start`` the first token's start offset, ``end`` the last token's end offset,
   ``word`` the tokens decoded (``convert_tokens_to_string``; an ``[UNK]`` token stands for
   ``text[start:end]``); groups whose ``entity_group`` is ``O`` are dropped.

:func:`decode_entities` does exactly steps 1-3 on KoBERT's pieces, with two deliberate
differences, both in how a group is placed in the text:

- ``start``/``end`` come from :class:`~kobert_gluon.text.alignment.PieceAligner`'s spans, which
  cover a piece's own characters. The fast tokenizer's offsets give a word's first piece
  (``▁박``) the character its ``▁`` stands for: the space before the word, or, for a word the
  basic tokenizer split off (punctuation, CJK, after no space), the character before it. So on
  most entities the pipeline's ``start`` is one less than ours and ``text[start:end]`` begins
  with a space.
- ``word`` is ``text[start:end]``, the user's own characters, never the decoded pieces: those
  put a space before every split-off word (``박 (33 )`` for ``박(33)``), collapse runs of
  whitespace, and show SentencePiece's normalisation (``(주)`` for ``㈜``, ``Cafe`` for
  ``Café``).

A group made only of lone ``▁`` pieces (no characters) is dropped; the pipeline would report
it on the character before. The labels and the type of a group follow the pipeline exactly.
"""
import numpy as np

OUTSIDE = 'O'


def softmax(logits):
    """Row-wise softmax as the pipeline computes it (shift by the maximum, float32 stays float32)."""
    logits = np.asarray(logits)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def entity_type(tag):
    """The pipeline's type of a tag: ``B-PS`` and ``I-PS`` are ``PS``; ``O`` (or any tag not in
    B-/I- form) is itself."""
    return tag[2:] if tag.startswith(('B-', 'I-')) else tag


def group_tokens(tags):
    """``[(first, last)]`` token index ranges (inclusive) of the pipeline's groups, ``O`` ones too."""
    groups = []
    for index, tag in enumerate(tags):
        if groups and not tag.startswith('B-') and entity_type(tag) == entity_type(tags[index - 1]):
            groups[-1][1] = index
        else:
            groups.append([index, index])
    return [tuple(group) for group in groups]


def decode_entities(text, pieces, probabilities, labels, ignore_labels=(OUTSIDE,)):
    """``[{'entity_group', 'word', 'start', 'end', 'score'}]`` for one text.

    ``pieces``: its pieces with spans (``PieceAligner.pieces(text)``), cut as the model input was;
    ``probabilities``: one row per piece (no ``[CLS]``/``[SEP]``), softmax over ``labels``, the
    tag names in label-id order. ``score`` is a Python float; ``text[start:end] == word``.
    """
    probabilities = np.asarray(probabilities)
    if len(pieces) != len(probabilities):
        raise ValueError(f'{len(pieces)} pieces but {len(probabilities)} rows of probabilities')
    best = probabilities.argmax(axis=-1) if len(probabilities) else np.zeros(0, dtype=int)
    tags = [labels[int(i)] for i in best]
    scores = probabilities[np.arange(len(best)), best]
    entities = []
    for first, last in group_tokens(tags):
        label = entity_type(tags[first])
        spans = [(piece.start, piece.end) for piece in pieces[first:last + 1] if piece.end > piece.start]
        if label in ignore_labels or not spans:
            continue
        start, end = spans[0][0], max(end for _, end in spans)
        entities.append({'entity_group': label, 'word': text[start:end], 'start': start, 'end': end,
                         'score': float(np.nanmean(scores[first:last + 1]))})
    return entities
