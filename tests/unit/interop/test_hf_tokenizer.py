"""The tokenizer.json written for transformers gives exactly kobert_gluon's (gluonnlp's) ids.

The reference is gluonnlp's ``BERTSPTokenizer`` + ``BERTSentenceTransform`` on the authentic
KoBERT files; every sentence of the shared NSMC and emotion sets, the odd inputs of
``PROBE_TEXTS``, every assigned code point and seeded mixtures of Hangul compatibility
forms are compared id for id, at max_len 64 and 8 (truncation). Any difference fails,
except the one kind tokenizers cannot express (``KNOWN_FLOAT32_TIES``): SentencePiece sums
Viterbi scores in float32, so between two segmentations that are permutations of the same
pieces (exactly equal scores: 'c888' as '88 8' or '8 88') its rounding picks one, while
tokenizers sums in float64, sees the tie and keeps the first. Each listed text is checked to
be such a tie, and verify_hf_tokenizer reports it.
"""
import csv
import json
import math
import random
import sys
import unicodedata

import pytest

pytest.importorskip('tokenizers')
pytest.importorskip('transformers')

pytestmark = pytest.mark.extra  # CI runs these again with the convert extra installed

import kobert_gluon  # noqa: E402,F401  (the gluonnlp SentencePiece fix)
from kobert_gluon.errors import ConversionError  # noqa: E402
from kobert_gluon.interop import hf_tokenizer  # noqa: E402
from kobert_gluon.interop.hf_tokenizer import (PROBE_TEXTS, build_hf_tokenizer, gluon_ids,  # noqa: E402
                                               verify_hf_tokenizer, write_hf_tokenizer)

SPIECE = 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
V01_MODEL, V01_VOCAB = 'tokenizer_78b3253a26.model', 'kobertvocab_f38b8a4d6d.json'
MAX_LENS = (64, 8)


def shared_file(directory, name):
    path = directory / name
    if not path.is_file():
        pytest.skip(f'no {path}')
    return path


@pytest.fixture(scope='module')
def spiece(kobert_dir):
    return shared_file(kobert_dir, SPIECE)


@pytest.fixture(scope='module')
def gluon(spiece):
    """(gluonnlp BERTSPTokenizer, BERTVocab) for the .spiece file."""
    from kobert_gluon.text.tokenizer import get_bert_tokenizer, get_vocab

    vocab = get_vocab(str(spiece))
    return get_bert_tokenizer(str(spiece), vocab), vocab


@pytest.fixture(scope='module')
def hf_dir(tmp_path_factory, spiece, gluon):
    """max_len -> a directory write_hf_tokenizer wrote."""
    root = tmp_path_factory.mktemp('hf-tokenizer')
    directories = {}
    for max_len in MAX_LENS:
        directories[max_len] = root / str(max_len)
        write_hf_tokenizer(str(spiece), gluon[1], str(directories[max_len]), max_len)
    return directories


def read_nsmc(path):
    with open(path, encoding='utf-8', newline='') as source:
        rows = csv.reader(source, delimiter='\t', quoting=csv.QUOTE_NONE)
        header = next(rows)
        column = header.index('document')
        return [row[column] for row in rows]


def read_emotion(path):
    with open(path, encoding='cp949', newline='') as source:
        return [row['Sentence'] for row in csv.DictReader(source)]


CORPORA = {
    'nsmc_test': lambda shared: read_nsmc(shared_file(shared / 'data' / 'nsmc', 'ratings_test_small.txt')),
    'nsmc_train': lambda shared: read_nsmc(shared_file(shared / 'data' / 'nsmc', 'ratings_train_small.txt')),
    'emotion': lambda shared: read_emotion(shared_file(shared / 'data' / 'emotion', 'single_turn_emotion_cp949.csv')),
}
EXPECTED_ROWS = {'nsmc_test': 7999, 'nsmc_train': 31566, 'emotion': 38594}
# the only texts of the shared corpora whose ids differ (at max_len 64; cut off at 8)
KNOWN_FLOAT32_TIES = {'emotion': {64: ['만남 하실 오빠들만 카톡 c888 추가요']}}


def float32_tie_words(text, gluon_tokenizer, hf):
    """The words of ``text`` that SentencePiece and tokenizers segment differently, if every
    one of them is an exact tie (same pieces in another order); None when any is not."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=gluon_tokenizer._path)
    tied = []
    for word in gluon_tokenizer.basic_tokenizer(text):
        ours = processor.encode(word, out_type=str)
        theirs = hf.encode(word, add_special_tokens=False).tokens
        if ours == theirs:
            continue
        scores = [math.fsum(processor.get_score(processor.piece_to_id(p)) for p in pieces)
                  for pieces in (ours, theirs)]
        if sorted(ours) != sorted(theirs) or scores[0] != scores[1]:
            return None
        tied.append(word)
    return tied


def assert_same_ids(directory, gluon_tokenizer, max_len, texts, known=(), allow_ties=False):
    mismatches = verify_hf_tokenizer(str(directory), gluon_tokenizer, max_len, texts, strict=False)
    unexplained = [text for text in mismatches if text not in known]
    if allow_ties:
        from tokenizers import Tokenizer

        hf = Tokenizer.from_file(str(directory / 'tokenizer.json'))
        unexplained = [text for text in unexplained if not float32_tie_words(text, gluon_tokenizer, hf)]
    shown = [ascii(text[:60]) for text in unexplained[:10]]
    assert not unexplained, f'{len(unexplained)} of {len(texts)} texts differ at max_len {max_len}: {shown}'
    return mismatches


@pytest.mark.parametrize('max_len', MAX_LENS)
@pytest.mark.parametrize('corpus', sorted(CORPORA))
def test_every_sentence_of_the_shared_corpora(corpus, max_len, shared_dir, gluon, hf_dir):
    texts = CORPORA[corpus](shared_dir)
    assert len(texts) == EXPECTED_ROWS[corpus]
    known = KNOWN_FLOAT32_TIES.get(corpus, {}).get(max_len, [])
    assert assert_same_ids(hf_dir[max_len], gluon[0], max_len, texts, known=known) == known


def test_known_differences_are_float32_ties(gluon, hf_dir):
    """What tokenizers cannot express: SentencePiece breaks exact ties by float32 rounding."""
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(hf_dir[64] / 'tokenizer.json'))
    texts = ['k555h'] + [text for by_len in KNOWN_FLOAT32_TIES.values() for known in by_len.values()
                         for text in known]
    for text in texts:
        assert float32_tie_words(text, gluon[0], hf), text
    assert verify_hf_tokenizer(hf, gluon[0], 64, texts, strict=False) == texts
    with pytest.raises(ConversionError, match="differs .* on 1 of 2 texts; first 'k555h'"):
        verify_hf_tokenizer(hf, gluon[0], 64, ['mmm', 'k555h'])


@pytest.mark.parametrize('max_len', MAX_LENS)
def test_probe_texts(max_len, gluon, hf_dir):
    assert_same_ids(hf_dir[max_len], gluon[0], max_len, PROBE_TEXTS)
    assert verify_hf_tokenizer(str(hf_dir[max_len]), gluon[0], max_len) == []  # PROBE_TEXTS by default


def test_probe_texts_cover_the_odd_inputs(gluon):
    texts = ''.join(PROBE_TEXTS)
    for char in 'Ａ１！é😀👍🏻“”‘’«»\t\n\x00\u200b\ufeff漢日～㈜':
        assert char in texts, ascii(char)
    assert '' in PROBE_TEXTS and ' ' in PROBE_TEXTS
    long_ids = gluon_ids(gluon[0], 10 ** 6, [max(PROBE_TEXTS, key=len)])[0]
    assert len(long_ids) > 64  # truncation is exercised at both max_lens


def test_every_assigned_code_point(gluon, hf_dir):
    """Each code point between two Hangul syllables, 200 such words to a text."""
    chars = [chr(code) for code in range(sys.maxunicode + 1)
             if unicodedata.category(chr(code)) not in ('Cn', 'Co', 'Cs')]
    chars += [chr(code) for code in (0xE000, 0xF8FF, 0xF0000, 0x10FFFD, 0x0378, 0xFDD0, 0xFFFF, 0xE0080, 0x10FFFF)]
    words = [f'가{char}나' for char in chars]
    texts = [' '.join(words[i:i + 200]) for i in range(0, len(words), 200)]
    assert_same_ids(hf_dir[64], gluon[0], 10 ** 6, texts)  # untruncated: every word counts


def test_hangul_compatibility_mixtures(gluon, hf_dir):
    """NFKC composes across characters where SentencePiece's charsmap does not (㉮ + ㄳ)."""
    def block(low, high):
        return [chr(code) for code in range(low, high + 1)]

    pools = [block(0x3131, 0x318E), block(0x1100, 0x11FF), block(0xFFA0, 0xFFDC), block(0x3200, 0x327F),
             block(0xAC00, 0xD7A3), block(0xFF01, 0xFF65), list('ab1 ~.\u2581')]
    rng = random.Random(0)
    texts = [''.join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 8))) for _ in range(20000)]
    assert_same_ids(hf_dir[64], gluon[0], 10 ** 6, texts, allow_ties=True)


@pytest.mark.parametrize('max_len', MAX_LENS)
def test_auto_tokenizer(max_len, shared_dir, gluon, hf_dir):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_dir[max_len]))
    assert tokenizer.is_fast
    assert tokenizer.model_max_length == max_len
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id,
            tokenizer.mask_token_id) == (2, 3, 1, 0, 4)
    texts = list(PROBE_TEXTS) + CORPORA['nsmc_test'](shared_dir)[:2000]
    expected = gluon_ids(gluon[0], max_len, texts)
    assert [tokenizer(text, truncation=True)['input_ids'] for text in texts] == expected
    assert tokenizer(texts, truncation=True)['input_ids'] == expected  # batched
    assert verify_hf_tokenizer(tokenizer, gluon[0], max_len) == []

    batch = tokenizer(['정말 재밌어요!', '[CLS] 최고'], truncation=True, padding=True)
    assert batch['input_ids'][0][-1] == tokenizer.pad_token_id or len(batch['input_ids'][0]) == len(
        batch['input_ids'][1])
    assert batch['input_ids'][1][:3] == gluon_ids(gluon[0], max_len, ['[CLS] 최고'])[0][:3]  # '[' 'CLS' ']'
    assert set(batch['token_type_ids'][0]) == {0}


def test_written_files(spiece, gluon, tmp_path):
    paths = write_hf_tokenizer(str(spiece), gluon[1], str(tmp_path / 'out'), 64)
    assert sorted(p.rsplit('/', 1)[-1] for p in paths.values()) == ['special_tokens_map.json', 'tokenizer.json',
                                                                     'tokenizer_config.json']
    config = json.loads((tmp_path / 'out' / 'tokenizer_config.json').read_text(encoding='utf-8'))
    assert config['tokenizer_class'] == 'PreTrainedTokenizerFast'
    assert config['model_max_length'] == 64 and config['do_lower_case'] is False
    assert (config['cls_token'], config['sep_token'], config['pad_token'], config['unk_token'],
            config['mask_token']) == ('[CLS]', '[SEP]', '[PAD]', '[UNK]', '[MASK]')
    special = json.loads((tmp_path / 'out' / 'special_tokens_map.json').read_text(encoding='utf-8'))
    assert special['unk_token'] == '[UNK]' and special['pad_token'] == '[PAD]'
    tokenizer_json = json.loads((tmp_path / 'out' / 'tokenizer.json').read_text(encoding='utf-8'))
    assert tokenizer_json['model']['type'] == 'Unigram'
    assert [token for token, _ in tokenizer_json['model']['vocab']] == gluon[1].idx_to_token
    assert tokenizer_json['truncation']['max_length'] == 64
    assert not [name for name in (tmp_path / 'out').iterdir() if name.name.startswith('.')]  # no temp files left


def test_verify_raises_on_a_wrong_tokenizer(spiece, gluon):
    from tokenizers import normalizers

    tokenizer = build_hf_tokenizer(str(spiece), gluon[1], 64)
    assert verify_hf_tokenizer(tokenizer, gluon[0], 64) == []
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(' ', '\u2581'),
                                                 normalizers.Prepend('\u2581')])  # no BERT basic tokenizer
    differing = verify_hf_tokenizer(tokenizer, gluon[0], 64, strict=False)
    assert 'ＡＢＣ１２３！' in differing and '' not in differing
    with pytest.raises(ConversionError, match=rf'differs .* on {len(differing)} of {len(PROBE_TEXTS)} texts; first'):
        verify_hf_tokenizer(tokenizer, gluon[0], 64)


def test_verify_leaves_the_callers_tokenizer_alone(spiece, gluon):
    tokenizer = build_hf_tokenizer(str(spiece), gluon[1], 64)
    verify_hf_tokenizer(tokenizer, gluon[0], 8)
    assert tokenizer.truncation['max_length'] == 64


def test_max_len_must_hold_cls_and_sep(spiece, gluon):
    with pytest.raises(ConversionError, match='max_len'):
        build_hf_tokenizer(str(spiece), gluon[1], 1)
    tokenizer = build_hf_tokenizer(str(spiece), gluon[1], 2)
    assert verify_hf_tokenizer(tokenizer, gluon[0], 2) == []


def test_kobert_v01_files(kobert_dir, shared_dir, tmp_path):
    """v0.1's .model + vocab .json: another piece order, specials not SentencePiece pieces."""
    from kobert_gluon.text.tokenizer import get_bert_tokenizer, get_vocab

    model, vocab_json = shared_file(kobert_dir, V01_MODEL), shared_file(kobert_dir, V01_VOCAB)
    vocab = get_vocab(vocab_json=str(vocab_json))
    gluon_tokenizer = get_bert_tokenizer(str(model), vocab)
    write_hf_tokenizer(str(model), vocab, str(tmp_path / 'v01'), 64)
    texts = list(PROBE_TEXTS) + CORPORA['nsmc_test'](shared_dir) + CORPORA['emotion'](shared_dir)
    for max_len in MAX_LENS:
        known = KNOWN_FLOAT32_TIES['emotion'].get(max_len, [])
        assert assert_same_ids(tmp_path / 'v01', gluon_tokenizer, max_len, texts, known=known) == known


def test_character_classes_follow_gluonnlp():
    from gluonnlp.data.fast_bert_tokenizer import is_chinese_char, is_control, is_punctuation, is_whitespace

    for kind, test in (('control', lambda ch, cat: ord(ch) in (0, 0xFFFD) or is_control(ch, cat)),
                       ('whitespace', is_whitespace), ('punctuation', is_punctuation)):
        chars = set(hf_tokenizer._chars_where(kind))
        for code in list(range(0x3000)) + list(range(0xFE00, 0x10000)) + [0xE0001, 0x1F600, 0x20000]:
            char = chr(code)
            assert (char in chars) == bool(test(char, unicodedata.category(char))), (kind, hex(code))
    cjk = {code for low, high in hf_tokenizer.CJK_RANGES for code in range(low, high + 1)}
    for code in range(0x2E80, 0x30000, 7):
        assert (code in cjk) == bool(is_chinese_char(chr(code))), hex(code)
