"""Sentence pairs through a converted model's ``tokenizer.json``: how its ids compare with
gluonnlp's ``BERTSentenceTransform(tokenizer, max_len, pair=True)``.

The pieces of each sentence and the ``[CLS] A [SEP] B [SEP]`` layout with segment ids 0 / 1 are
the same (:mod:`.hf_tokenizer` builds both). What a tokenizer.json cannot express is gluonnlp's
truncation of a pair that is too long: ``_truncate_seq_pair`` removes the last piece of the
longer sentence, of the second on a tie, until the pair fits, so when both sentences are longer
than half of what fits, the first keeps the odd piece. ``tokenizers``' LongestFirst (the only
pair strategy transformers' fast tokenizers have) gives the odd piece to the second sentence
unless the first is strictly longer. The two differ only where ``max_len - 3`` is odd (an even
``max_len``) and both sentences are longer than half of it; with an odd ``max_len`` they agree on
every pair. :func:`verify_hf_pairs` checks the pieces exactly and counts those pairs.
"""
import gluonnlp as nlp

from ..errors import ConversionError

PAIR_SPECIALS = 3  # [CLS] A [SEP] B [SEP]


def tokenizers_truncation(first, second, limit):
    """``first`` and ``second`` cut as ``tokenizers``' LongestFirst cuts a pair to ``limit`` pieces
    (its algorithm, restated: the shorter side keeps what it can, both long: half each, the odd
    piece to the second unless the first is strictly longer)."""
    n1, n2 = len(first), len(second)
    if n1 + n2 <= limit:
        return first, second
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > limit else max(n1, limit - n1)
    if n1 + n2 > limit:
        n1 = limit // 2
        n2 = n1 + limit % 2
    if swap:
        n1, n2 = n2, n1
    return first[:n1], second[:n2]


def gluon_pairs(gluon_tokenizer, max_len, pairs):
    """kobert_gluon's ``(ids, segment ids)`` of each pair: BERTSentenceTransform(pair=True)."""
    transform = nlp.data.BERTSentenceTransform(gluon_tokenizer, max_seq_length=max_len, pad=False, pair=True)
    encoded = (transform([first, second]) for first, second in pairs)
    return [([int(i) for i in ids], [int(s) for s in segments]) for ids, _, segments in encoded]


def tokenizers_pairs(gluon_tokenizer, max_len, pairs):
    """``(ids, segment ids)`` of gluonnlp's pieces, cut by :func:`tokenizers_truncation`: what an
    exact tokenizer.json must give."""
    vocab = gluon_tokenizer.vocab
    cls_id, sep_id = vocab[vocab.cls_token], vocab[vocab.sep_token]
    results = []
    for first, second in pairs:
        pieces_a, pieces_b = tokenizers_truncation(gluon_tokenizer(first), gluon_tokenizer(second),
                                                   max_len - PAIR_SPECIALS)
        ids_a, ids_b = vocab[pieces_a] if pieces_a else [], vocab[pieces_b] if pieces_b else []
        results.append(([cls_id, *ids_a, sep_id, *ids_b, sep_id], [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)))
    return results


def hf_pairs(tokenizer, max_len, pairs):
    """``(ids, type ids)`` of a ``tokenizers.Tokenizer`` or a transformers fast tokenizer."""
    pairs = list(pairs)
    if hasattr(tokenizer, 'encode_batch'):  # tokenizers.Tokenizer: a copy, the caller's keeps its settings
        tokenizer = type(tokenizer).from_str(tokenizer.to_str())
        tokenizer.enable_truncation(max_length=max_len)
        tokenizer.encode_special_tokens = True
        return [(list(e.ids), list(e.type_ids)) for e in tokenizer.encode_batch(pairs)]
    encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_len)
    return list(zip(encoded['input_ids'], encoded['token_type_ids']))


def verify_hf_pairs(tokenizer, gluon_tokenizer, max_len, pairs, strict=True):
    """Compare a tokenizer.json's pair encodings with kobert_gluon's.

    Returns ``{'pairs', 'equal', 'truncation_differs', 'tokenization_differs'}``: how many pairs,
    how many give gluonnlp's ids and segments exactly, the pairs (as given) that differ only by
    the truncation rule above, and those that differ otherwise. ``strict``: a ConversionError
    for any of the last kind (the tokenizer is wrong); the first kind is what tokenizers can do.
    """
    pairs = list(pairs)
    got = hf_pairs(tokenizer, max_len, pairs)
    gluon, rule = gluon_pairs(gluon_tokenizer, max_len, pairs), tokenizers_pairs(gluon_tokenizer, max_len, pairs)
    equal = sum(have == want for have, want in zip(got, gluon))
    truncation = [pair for pair, have, want, cut in zip(pairs, got, gluon, rule) if have != want and have == cut]
    tokenization = [pair for pair, have, cut in zip(pairs, got, rule) if have != cut]
    if tokenization and strict:
        raise ConversionError(f'the transformers tokenizer encodes {len(tokenization)} of {len(pairs)} sentence '
                              f'pairs with other pieces than kobert_gluon; first {tokenization[0]!r}')
    return {'pairs': len(pairs), 'equal': equal, 'truncation_differs': truncation,
            'tokenization_differs': tokenization}
