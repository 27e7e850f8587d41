"""Exactly the ids gluonnlp's BERTSPTokenizer + BERTSentenceTransform give, without gluonnlp or mxnet.

For PyTorch code that reads a folder ``kobert-gluon convert --to-transformers`` wrote: its
``tokenizer/`` SentencePiece file, ``vocab.txt`` (line number = id) and ``kobert_gluon.json``.
"""
import os
import unicodedata

import numpy as np

from .. import arguments as _arg
from ..errors import ConversionError
from ..fileio import file_inside, read_json
from .vocab import TOKENIZER_DIR

META_FILE = 'kobert_gluon.json'  # in a converted folder: max_len, dropout, tokenizer files and md5s
VOCAB_TXT = 'vocab.txt'


def read_meta(src_dir):
    path = os.path.join(src_dir, META_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        meta = read_json(path)
    except ValueError as error:
        raise ConversionError(f'{path}: not valid JSON ({error})') from error
    if not isinstance(meta, dict) or not isinstance(meta.get('tokenizer', {}), dict):
        raise ConversionError(f'{path}: expected a JSON object whose "tokenizer" maps roles to files')
    return meta


def recorded_file(directory, entry):
    """A tokenizer file named in META_FILE (a downloaded directory may have written anything)."""
    name = entry.get('file') if isinstance(entry, dict) else None
    return file_inside(directory, TOKENIZER_DIR, name, ConversionError, os.path.join(directory, META_FILE))


class TokenIds:
    """Exactly the ids gluonnlp's BERTSPTokenizer + BERTSentenceTransform give, without gluonnlp.

    For PyTorch code: BERT's basic tokenization (cased, as KoBERT's) splits whitespace and
    punctuation, then SentencePiece encodes each word on its own, and pieces are looked up
    in our vocab. Needs only ``sentencepiece``::

        ids = TokenIds.from_directory('kobert-hf')
        batch = ids(['정말 재밌어요!'], max_len=64)       # input_ids, token_type_ids, attention_mask
        logits = model(**{k: torch.tensor(v) for k, v in batch.items()}).logits
    """

    def __init__(self, sentencepiece_path, tokens):
        sentencepiece_path = _arg.path('TokenIds', 'sentencepiece_path', sentencepiece_path)
        _arg.strings('TokenIds', 'tokens', tokens)
        import sentencepiece

        self.sentencepiece = sentencepiece.SentencePieceProcessor(model_file=os.fspath(sentencepiece_path))
        self.tokens = list(tokens)
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        self.unk_id, self.pad_id = self.token_to_id['[UNK]'], self.token_to_id['[PAD]']
        self.cls_id, self.sep_id = self.token_to_id['[CLS]'], self.token_to_id['[SEP]']

    @classmethod
    def from_directory(cls, directory):
        """From a directory :func:`to_transformers` wrote (tokenizer/ + vocab.txt + kobert_gluon.json)."""
        meta = read_meta(directory)
        if not meta.get('tokenizer'):
            raise ConversionError(f'{directory}: no tokenizer recorded in {META_FILE}')
        with open(os.path.join(directory, VOCAB_TXT), encoding='utf-8') as source:
            tokens = source.read().split('\n')[:-1]
        return cls(recorded_file(directory, meta['tokenizer']['tokenizer']), tokens)

    def tokenize(self, text):
        return [piece for word in basic_tokenize(text) for piece in self.sentencepiece.encode(word, out_type=str)]

    def encode(self, text, max_len=None, text_pair=None):
        """``[CLS] ids [SEP]`` (a pair: ``[CLS] ids [SEP] pair ids [SEP]``), cut to ``max_len`` as
        BERTSentenceTransform cuts (a pair: the longer side loses its last piece first, the
        second on a tie); returns ``(ids, segment ids)`` for a pair, the ids alone otherwise."""
        ids = [self.token_to_id.get(piece, self.unk_id) for piece in self.tokenize(text)]
        if text_pair is None:
            if max_len is not None:
                ids = ids[:max_len - 2]
            return [self.cls_id] + ids + [self.sep_id]
        pair_ids = [self.token_to_id.get(piece, self.unk_id) for piece in self.tokenize(text_pair)]
        if max_len is not None:
            while len(ids) + len(pair_ids) > max_len - 3:  # gluonnlp's _truncate_seq_pair
                (ids if len(ids) > len(pair_ids) else pair_ids).pop()
        return ([self.cls_id] + ids + [self.sep_id] + pair_ids + [self.sep_id],
                [0] * (len(ids) + 2) + [1] * (len(pair_ids) + 1))

    def __call__(self, texts, max_len=None, text_pairs=None):
        """int64 arrays ``input_ids``, ``token_type_ids``, ``attention_mask`` padded with [PAD]."""
        if text_pairs is None:
            encoded = [(ids, [0] * len(ids)) for ids in (self.encode(text, max_len) for text in texts)]
        else:
            encoded = [self.encode(text, max_len, pair) for text, pair in zip(texts, text_pairs)]
        width = max((len(ids) for ids, _ in encoded), default=0)
        input_ids = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        token_type_ids = np.zeros((len(encoded), width), dtype=np.int64)
        attention_mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, (ids, segments) in enumerate(encoded):
            input_ids[row, :len(ids)] = ids
            token_type_ids[row, :len(segments)] = segments
            attention_mask[row, :len(ids)] = 1
        return {'input_ids': input_ids, 'token_type_ids': token_type_ids, 'attention_mask': attention_mask}


def basic_tokenize(text):
    """gluonnlp 0.10's cased BERTBasicTokenizer: drop control chars, space out CJK and punctuation.

    Like gluonnlp it NFD-normalises and drops non-spacing marks even when cased; SentencePiece
    recomposes Hangul afterwards.
    """
    chars = []
    for char in text:
        category = unicodedata.category(char)
        if char in '\x00\ufffd' or (category in ('Cc', 'Cf') and char not in '\t\n\r'):
            continue
        if char in ' \t\n\r' or category == 'Zs':
            chars.append(' ')
        elif _is_cjk(ord(char)):
            chars.append(f' {char} ')
        else:
            chars.append(char)
    words = []
    for char in unicodedata.normalize('NFD', ''.join(chars).strip()):
        category = unicodedata.category(char)
        if category == 'Mn':
            continue
        words.append(f' {char} ' if _is_punctuation(ord(char), category) else char)
    return ''.join(words).split()


CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(code):
    return any(low <= code <= high for low, high in CJK_RANGES)


def _is_punctuation(code, category):
    # BERT counts every non-alphanumeric ASCII symbol ($, ^, `) as punctuation too.
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 or category.startswith('P')
