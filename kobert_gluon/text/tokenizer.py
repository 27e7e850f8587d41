"""KoBERT vocabulary and tokenizer, from either authentic file format, or trained anew.

KoBERT shipped its tokenizer twice: v0.1 as a SentencePiece ``.model`` plus a gluonnlp vocab
``.json``, later as one combined ``.spiece`` whose first pieces are the BERT specials. Both give
the same ids. ``train_sentencepiece`` writes a ``.spiece`` laid out the same way for users
(and the embedded demo) without the KoBERT files.
"""
import logging
import os
import re
import shutil
import tempfile

import gluonnlp as nlp
import sentencepiece as spm

from .. import arguments as _arg
from .. import assets
from ..errors import ConfigError, DataError
from ..fileio import atomic_path
from .vocab import SPECIAL_TOKENS
from ..legacy import FORMATS, get_tokenizer, get_tokenizer_path  # noqa: F401  (old names, light: no mxnet)

logger = logging.getLogger(__name__)



def get_vocab(tokenizer_path=None, vocab_json=None, kobert_dir=None, cache_dir=None):
    """gluonnlp ``BERTVocab`` with [UNK]=0 [PAD]=1 [CLS]=2 [SEP]=3 [MASK]=4.

    Built from ``vocab_json`` (the v0.1 format) when given, else from the ``.spiece`` file
    (``tokenizer_path`` or the KoBERT one found through ``assets``).
    """
    for name, value in (('tokenizer_path', tokenizer_path), ('vocab_json', vocab_json),
                        ('kobert_dir', kobert_dir), ('cache_dir', cache_dir)):
        _arg.path('get_vocab', name, value, optional=True)
    if vocab_json is not None:
        with open(vocab_json, encoding='utf-8') as vocab_file:
            vocab = nlp.vocab.BERTVocab.from_json(vocab_file.read())
        source = vocab_json
    else:
        source = tokenizer_path or get_tokenizer_path(kobert_dir, cache_dir)
        vocab = nlp.vocab.BERTVocab.from_sentencepiece(source, padding_token='[PAD]')
    check_special_ids(vocab, source)
    return vocab


def check_special_ids(vocab, source):
    found = [vocab.idx_to_token[i] if i < len(vocab) else None for i in range(len(SPECIAL_TOKENS))]
    if tuple(found) != SPECIAL_TOKENS or vocab.padding_token != '[PAD]':
        raise DataError(f'{source}: not a KoBERT-style vocab; ids 0-4 are {found}, '
                         f'expected {list(SPECIAL_TOKENS)}. A v0.1 .model file needs its '
                         f'vocab .json (vocab_json=...).')


def get_bert_tokenizer(tokenizer_path, vocab):
    """KoBERT's tokenizer: cased, SentencePiece pieces looked up in ``vocab``."""
    _arg.path('get_bert_tokenizer', 'tokenizer_path', tokenizer_path)
    _arg.instance('get_bert_tokenizer', 'vocab', vocab, nlp.Vocab, 'a gluonnlp vocab (kobert_gluon.get_vocab)')
    return nlp.data.BERTSPTokenizer(tokenizer_path, vocab, lower=False)


def load_tokenizer(kobert_dir=None, cache_dir=None, format='spiece', download=True):
    """(tokenizer, vocab, files) for the KoBERT tokenizer in either format.

    ``files`` maps each file's role to its path, for saving alongside a trained model.
    """
    for name, value in (('kobert_dir', kobert_dir), ('cache_dir', cache_dir)):
        _arg.path('load_tokenizer', name, value, optional=True)
    _arg.text('load_tokenizer', 'format', format)
    _arg.flag('load_tokenizer', 'download', download)
    if _check_format(format) == 'spiece':
        files = {'tokenizer': get_tokenizer_path(kobert_dir, cache_dir, download=download)}
        vocab = get_vocab(files['tokenizer'])
    else:
        files = {'tokenizer': get_tokenizer_path(kobert_dir, cache_dir, 'v0.1', download=download),
                 'vocab_json': assets.resolve('vocab_v01', kobert_dir=kobert_dir, cache_dir=cache_dir,
                                              download=download)}
        vocab = get_vocab(vocab_json=files['vocab_json'])
    return get_bert_tokenizer(files['tokenizer'], vocab), vocab, files


def train_sentencepiece(sentences, output_path, vocab_size=8002, model_type='unigram',
                        character_coverage=0.9995, seed_sentencepiece_size=100000):
    """Train a SentencePiece model laid out like KoBERT's ``.spiece`` and return its path.

    The BERT specials take ids 0-4 as in KoBERT (``[UNK]`` is SentencePiece's unknown piece,
    the other four are user-defined pieces), so ``get_vocab(path)`` works on the result.
    ``vocab_size`` counts those five; it is a soft limit (a small corpus may yield fewer
    pieces) and grows when the corpus has more distinct characters than it allows.
    """
    _arg.iterable('train_sentencepiece', 'sentences', sentences)
    _arg.path('train_sentencepiece', 'output_path', output_path)
    _arg.integer('train_sentencepiece', 'vocab_size', vocab_size, minimum=len(SPECIAL_TOKENS) + 1)
    _arg.text('train_sentencepiece', 'model_type', model_type)
    _arg.real('train_sentencepiece', 'character_coverage', character_coverage, 0, 1, open_interval=False)
    _arg.integer('train_sentencepiece', 'seed_sentencepiece_size', seed_sentencepiece_size, minimum=1)
    sentences = [s for s in sentences if isinstance(s, str) and s.strip()]
    if not sentences:
        raise DataError('train_sentencepiece: no non-empty sentences to train on')
    output_path = os.fspath(output_path)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        corpus = os.path.join(workdir, 'corpus.txt')
        with open(corpus, 'w', encoding='utf-8') as corpus_file:
            corpus_file.write('\n'.join(s.replace('\n', ' ') for s in sentences))
        prefix = os.path.join(workdir, 'sp')
        options = dict(input=corpus, model_prefix=prefix, model_type=model_type,
                       character_coverage=character_coverage, unk_id=0, unk_piece='[UNK]',
                       bos_id=-1, eos_id=-1, pad_id=-1, user_defined_symbols=list(SPECIAL_TOKENS[1:]),
                       hard_vocab_limit=False, seed_sentencepiece_size=seed_sentencepiece_size,
                       num_threads=1, minloglevel=2)
        try:
            spm.SentencePieceTrainer.train(vocab_size=vocab_size, **options)
        except RuntimeError as error:
            # Hangul alone has thousands of syllables: a small vocab cannot hold every
            # character of a varied corpus. Grow it to what SentencePiece says it needs.
            needed = re.search(r'smaller than required_chars\. \d+ vs (\d+)', str(error))
            if not needed:
                raise
            grown = int(needed.group(1)) + len(SPECIAL_TOKENS) + 100
            logger.warning('vocab_size=%d cannot cover the corpus characters; using %d', vocab_size, grown)
            spm.SentencePieceTrainer.train(vocab_size=grown, **options)
        with atomic_path(output_path) as tmp:
            shutil.copyfile(prefix + '.model', tmp)
    logger.info('trained a SentencePiece tokenizer on %d sentences: %s', len(sentences), output_path)
    return output_path


def load_or_train_tokenizer(sentences, trained_path, kobert_dir=None, download=True, vocab_size=3000):
    """(tokenizer, vocab, files): KoBERT's tokenizer when its files are found (or, with
    ``download``, fetched); otherwise one trained on ``sentences`` and kept at
    ``trained_path`` (an existing file there is reused, so a resumed run keeps its pieces)."""
    try:
        return load_tokenizer(kobert_dir=kobert_dir, download=download)
    except assets.AssetNotFoundError:
        if download:
            raise
    if not os.path.isfile(trained_path):
        train_sentencepiece(sentences, trained_path, vocab_size)
    logger.info('KoBERT tokenizer files not found; using a tokenizer trained on the training data: %s',
                trained_path)
    vocab = get_vocab(trained_path)
    return get_bert_tokenizer(trained_path, vocab), vocab, {'tokenizer': trained_path}


def _check_format(format):
    if format not in FORMATS:
        raise ConfigError(f'format={format!r}: expected one of {FORMATS}')
    return format
