"""Masked-LM examples and batches: BERT's masking, next-sentence pairs, and the endless,
resumable stream of batches a pretraining run reads.

15% of the non-special tokens are chosen for prediction (optionally whole words, grouped by
SentencePiece's ``▁`` word starts); 80% of them become [MASK], 10% a random token, 10% stay;
with next-sentence prediction half the pairs get a random second sentence.
"""
import logging

import numpy as np

from ..errors import DataError
from ..text.corpus import Position, read_chunks, tokenized_chunks
from ..text.vocab import SPECIAL_TOKENS

logger = logging.getLogger(__name__)

NOT_NEXT, RANDOM_NEXT = 0, 1  # next-sentence labels as in BERT's create_pretraining_data
SWAPPED = 1  # sentence-order label: the two parts in the wrong order
# Pieces below this id are the specials [UNK] [PAD] [CLS] [SEP] [MASK]: never masked, never drawn.
FIRST_ORDINARY_ID = len(SPECIAL_TOKENS)
WIDTH_MULTIPLE = 8  # batch widths rounded up to it, so few graph shapes get built


def mask_tokens(tokens, rng, vocab_size, mask_prob=0.15, max_predictions=20, word_starts=None):
    """BERT's masking of one sequence of token ids.

    Returns ``(masked, positions, labels)``: the input with chosen tokens replaced, their
    positions (ascending) and original ids. Specials (ids below 5, [PAD] included) are never
    chosen. With ``word_starts`` (a bool per vocab id: the piece begins a word) a word's pieces
    are chosen together, and a word that would overshoot the budget is skipped, as in BERT.
    """
    tokens = np.asarray(tokens)
    candidates = np.flatnonzero(tokens >= FIRST_ORDINARY_ID)
    groups = _word_groups(tokens, candidates, word_starts)
    budget = min(max_predictions, max(1, int(round(len(candidates) * mask_prob)))) if len(candidates) else 0
    chosen = []
    for group in rng.permutation(len(groups)):
        if len(chosen) + len(groups[group]) <= budget:
            chosen.extend(groups[group])
        if len(chosen) == budget:
            break
    positions = np.sort(np.asarray(chosen, dtype=np.int64))
    labels = tokens[positions]
    masked = tokens.copy()
    action = rng.random(len(positions))
    random_ids = rng.integers(FIRST_ORDINARY_ID, vocab_size, size=len(positions))
    masked[positions] = np.where(action < 0.8, SPECIAL_TOKENS.index('[MASK]'),
                                 np.where(action < 0.9, labels, random_ids))
    return masked, positions, labels


def _word_groups(tokens, candidates, word_starts):
    if word_starts is None:
        return [[int(p)] for p in candidates]
    # A word runs from a ▁ piece (or the piece after a special) to the next; an [UNK]
    # inside it is left out of the group, not a word boundary.
    previous = np.roll(tokens, 1)
    after_special = (previous > SPECIAL_TOKENS.index('[UNK]')) & (previous < FIRST_ORDINARY_ID)
    word_ids = np.cumsum(word_starts[tokens] | after_special)
    groups = {}
    for p in candidates:
        groups.setdefault(word_ids[p], []).append(int(p))
    return list(groups.values())


def word_start_table(vocab):
    """True for every piece that begins a word (SentencePiece marks those with ``▁``)."""
    return np.array([token.startswith('▁') for token in vocab.idx_to_token], dtype=bool)


def single_examples(lines, max_len, cls_id, sep_id):
    """(tokens, segments, next-sentence label) per line: [CLS] line [SEP], truncated."""
    for ids in lines:
        if len(ids):
            tokens = np.concatenate([[cls_id], ids[:max_len - 2], [sep_id]])
            yield tokens, np.zeros(len(tokens), dtype=np.int32), NOT_NEXT


def pair_examples(documents, max_len, cls_id, sep_id, rng):
    """Consecutive sentence pairs of each document; half get a random sentence from another
    document of the same chunk instead (label RANDOM_NEXT). One-sentence documents give none."""
    documents = [[ids for ids in document if len(ids)] for document in documents]
    documents = [document for document in documents if document]
    for index, document in enumerate(documents):
        for j in range(len(document) - 1):
            first, second, label = document[j], document[j + 1], NOT_NEXT
            if len(documents) > 1 and rng.random() < 0.5:
                other = (index + 1 + rng.integers(len(documents) - 1)) % len(documents)
                second, label = documents[other][rng.integers(len(documents[other]))], RANDOM_NEXT
            yield _pair(list(first), list(second), label, max_len, cls_id, sep_id)


def split_line_examples(lines, max_len, cls_id, sep_id, rng):
    """Each line cut in two at a random piece; half keep their own second part, half get the
    second part of another line of the chunk (label RANDOM_NEXT). One-piece lines give none."""
    lines = [ids for ids in lines if len(ids) >= 2]
    for index, ids in enumerate(lines):
        cut = rng.integers(1, len(ids))
        first, second, label = ids[:cut], ids[cut:], NOT_NEXT
        if len(lines) > 1 and rng.random() < 0.5:
            other = lines[(index + 1 + rng.integers(len(lines) - 1)) % len(lines)]
            second, label = other[rng.integers(1, len(other)):], RANDOM_NEXT
        yield _pair(list(first), list(second), label, max_len, cls_id, sep_id)


def sentence_order_examples(lines, max_len, cls_id, sep_id, rng):
    """Sentence-order pairs (ALBERT's SOP on lines): each line cut in two at a random piece; half
    the pairs keep the order (label NOT_NEXT), half are swapped (label SWAPPED). One-piece lines give none."""
    for ids in (ids for ids in lines if len(ids) >= 2):
        cut = rng.integers(1, len(ids))
        first, second, label = ids[:cut], ids[cut:], NOT_NEXT
        if rng.random() < 0.5:
            first, second, label = second, first, SWAPPED
        yield _pair(list(first), list(second), label, max_len, cls_id, sep_id)


def _pair(first, second, label, max_len, cls_id, sep_id):
    first, second = _truncate_pair(first, second, max_len - 3)
    tokens = np.array([cls_id] + first + [sep_id] + second + [sep_id])
    segments = np.array([0] * (len(first) + 2) + [1] * (len(second) + 1), dtype=np.int32)
    return tokens, segments, label


def _truncate_pair(first, second, limit):
    while len(first) + len(second) > limit:
        (first if len(first) > len(second) else second).pop()
    return first, second


def make_batch(examples, rng, vocab_size, pad_id, mask_prob, max_predictions, word_starts):
    """numpy arrays of one batch: each sequence masked, padded to the batch's own width."""
    masked = [mask_tokens(tokens, rng, vocab_size, mask_prob, max_predictions, word_starts)
              for tokens, _, _ in examples]
    width = _round_up(max(len(tokens) for tokens, _, _ in examples))
    predictions = _round_up(max(1, max(len(positions) for _, positions, _ in masked)))
    batch = {'token_ids': np.full((len(examples), width), pad_id, dtype=np.int32),
             'segment_ids': np.zeros((len(examples), width), dtype=np.int32),
             'valid_length': np.array([len(tokens) for tokens, _, _ in examples], dtype=np.float32),
             'masked_positions': np.zeros((len(examples), predictions), dtype=np.int32),
             'masked_ids': np.zeros((len(examples), predictions), dtype=np.int32),
             'masked_weights': np.zeros((len(examples), predictions), dtype=np.float32),
             'next_sentence': np.array([label for _, _, label in examples], dtype=np.int32)}
    for row, ((_, segments, _), (tokens, positions, labels)) in enumerate(zip(examples, masked)):
        batch['token_ids'][row, :len(tokens)] = tokens
        batch['segment_ids'][row, :len(segments)] = segments
        batch['masked_positions'][row, :len(positions)] = positions
        batch['masked_ids'][row, :len(labels)] = labels
        batch['masked_weights'][row, :len(labels)] = 1
    return batch


def _round_up(width):
    return -(-width // WIDTH_MULTIPLE) * WIDTH_MULTIPLE


class BatchStream:
    """Endless batches of this rank's shard, reading the corpus again epoch after epoch.

    Everything random about a chunk (shuffle, pairs, masks) comes from a generator seeded with
    (seed, epoch, the chunk's first unit), so the batches depend only on the settings: a
    resumed run re-reads the chunk it stopped in and skips the batches it already used.
    """

    def __init__(self, config, tokenizer_path, vocab, word_starts=None):
        self.config = config
        self.tokenizer_path = tokenizer_path
        self.vocab_size = len(vocab)
        self.pad_id, self.cls_id, self.sep_id = (vocab[t] for t in ('[PAD]', '[CLS]', '[SEP]'))
        self.word_starts = word_starts

    def __call__(self, position):
        """Yield ``(batch, position after it)``; ``position`` is a dict from an earlier one."""
        config = self.config
        epoch, skip = position['epoch'], position['batch']
        start = Position(position['offset'], position['unit'], position.get('file', 0))
        while True:
            found = False
            chunks = read_chunks(config.corpus, config.chunk_lines, config.rank, config.num_workers,
                                 config.next_sentence and not config.split_lines, start)
            for chunk, ids in tokenized_chunks(chunks, self.tokenizer_path, config.num_procs):
                rng = np.random.default_rng([config.seed, epoch, chunk.start.unit])
                for number, batch in enumerate(self.chunk_batches(ids, rng)):
                    found = True
                    if number >= skip:
                        yield batch, {'epoch': epoch, 'offset': chunk.start.offset, 'unit': chunk.start.unit,
                                      'file': chunk.start.file, 'batch': number + 1}
                skip = 0
            if not found and start.unit == 0:
                raise DataError(f'{config.corpus}: no text for rank {config.rank} of {config.num_workers}'
                                + (' (next_sentence needs documents of two or more lines)'
                                   if config.next_sentence else ''))
            epoch, start = epoch + 1, Position()
            logger.info('corpus read; epoch %d begins', epoch)

    def chunk_batches(self, ids, rng):
        config = self.config
        if config.sentence_order:
            examples = list(sentence_order_examples(ids, config.max_len, self.cls_id, self.sep_id, rng))
        elif config.next_sentence and config.split_lines:
            examples = list(split_line_examples(ids, config.max_len, self.cls_id, self.sep_id, rng))
        elif config.next_sentence:
            examples = list(pair_examples(ids, config.max_len, self.cls_id, self.sep_id, rng))
        else:
            examples = list(single_examples(ids, config.max_len, self.cls_id, self.sep_id))
        examples = [examples[i] for i in rng.permutation(len(examples))]
        for begin in range(0, len(examples), config.batch_size):
            yield make_batch(examples[begin:begin + config.batch_size], rng, self.vocab_size, self.pad_id,
                             config.mask_prob, config.max_predictions, self.word_starts)
