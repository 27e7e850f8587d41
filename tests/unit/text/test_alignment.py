"""KoBERT pieces with character spans: gluonnlp's pieces exactly, spans that hold their characters.

The invariant the span tests check, for every sentence: group the pieces that have characters
into runs whose spans overlap (pieces of one NFKC expansion such as ㈜ -> '▁(', '주', ')'); for
every group, SentencePiece's normalisation of the basic tokenizer's words of ``text[start:end]``
equals the group's pieces joined, '▁' left out. Besides: only a lone '▁' has an empty span, no
span starts or ends on whitespace, groups come in text order, and every character no piece
covers is one the basic tokenizer drops (whitespace, control characters, marks) or a literal
'▁', which SentencePiece reads as a space.
"""
import collections
import functools
import pathlib

import gluonnlp as nlp
import pandas as pd
import pytest

from kobert_gluon.errors import ConfigError
from kobert_gluon.fileio import package_file
from kobert_gluon.text.alignment import (Piece, PieceAligner, basic_words, character_tags, entities_from_piece_tags,
                                         entity_round_trip, piece_tags)
from kobert_gluon.text.entities import EntitySpan, check_tag, read_entity_file
from kobert_gluon.text.token_ids import basic_tokenize
from kobert_gluon.text.tokenizer import load_tokenizer

KLUE_FILE = ('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')
MARK = '\u2581'
# Text the normalisation changes: NFKC expansions (㈜ … ½ ﬁ ﷺ), full-width letters, decomposed
# and compatibility jamo, accents (Mn dropped), marks out of canonical order, a spacing mark with
# a combining class (U+302E), CJK, controls, zero-width joiners, tabs and newlines, a literal ▁.
TRICKY = ['경찰은 또 ㈜삼성…  ﷺ 가', 'Café naïve Cafe\u0301 ｆｕｌｌ ½ ﬁ', '\u1100\u1161\u11a8 ㄱㅏ 각',
          'a\u0301\u0323 a\u0323\u0301 x\u302e\u0301y \u0301b', '漢字テスト中文 한자(漢字)', 'a\x00b\x07c\ufffdd\u200be',
          '👨\u200d👩\u200d👧 가족', ' \t탭\n줄\r\n바꿈 ', f'{MARK}밑줄{MARK} a{MARK}b', '', '   ', '10:30~11:00, 3.5%!?']


def tsv_column(path, columns, header=True):
    lines = path.read_text(encoding='utf-8').split('\n')[1 if header else 0:]
    return [line.split('\t')[column] for line in lines if line for column in columns]


@pytest.fixture(scope='module')
def shared_sentences(shared_dir):
    """Every sentence of the shared data sets and the package's demo set, once each."""
    data = shared_dir / 'data'
    texts = [sentence.text for sentence in read_entity_file(shared_dir.joinpath(*KLUE_FILE))]
    for name in ('xnli.dev.ko.tsv', 'xnli.test.ko.tsv'):
        texts += tsv_column(data / 'kornli' / name, (0, 1))
    for name in ('sts-train.tsv', 'sts-dev.tsv', 'sts-test.tsv'):
        texts += tsv_column(data / 'korsts' / name, (5, 6))
    texts += tsv_column(data / 'kote' / 'val.tsv', (1,), header=False)
    for name in ('ratings_train_small.txt', 'ratings_test_small.txt'):
        texts += tsv_column(data / 'nsmc' / name, (1,))
    texts += list(pd.read_csv(data / 'emotion' / 'single_turn_emotion_cp949.csv', encoding='cp949')['Sentence'])
    texts += tsv_column(pathlib.Path(package_file('resources', 'demo_sentiment.tsv')), (0,))
    texts = sorted(set(texts))
    assert len(texts) == 112237
    return texts


@pytest.fixture(scope='module', params=['spiece', 'v0.1'])
def tokenizer(request, kobert_dir):
    return load_tokenizer(kobert_dir=str(kobert_dir), format=request.param)[0]


@pytest.fixture(scope='module')
def aligner(kobert_dir):
    return PieceAligner.from_tokenizer(load_tokenizer(kobert_dir=str(kobert_dir))[0])


def check_span_order(text, pieces):
    """The cheap invariants; returns the groups of pieces that share characters."""
    groups, end = [], -1
    for piece in pieces:
        assert 0 <= piece.start <= piece.end <= len(text)
        if piece.start == piece.end:
            assert piece.piece == MARK, (text, piece)
            continue
        assert not text[piece.start].isspace() and not text[piece.end - 1].isspace(), (text, piece)
        if groups and piece.start < end:
            groups[-1].append(piece)
        else:
            assert piece.start >= end, (text, piece)
            groups.append([piece])
        end = max(end, piece.end)
    return groups


def normaliser(processor):
    @functools.lru_cache(maxsize=None)
    def normalised(chunk):  # words repeat: the cache keeps the shared-data test short
        return ''.join(processor.normalize(word) for word in basic_tokenize(chunk)).replace(MARK, '')
    return normalised


def check_span_characters(normalised, text, pieces):
    covered = set()
    for group in check_span_order(text, pieces):
        start, end = min(p.start for p in group), max(p.end for p in group)
        assert normalised(text[start:end]) == ''.join(p.piece for p in group).replace(MARK, ''), (text, group)
        covered.update(range(start, end))
    uncovered = [char for index, char in enumerate(text) if index not in covered]
    assert not any(basic_tokenize(char) for char in uncovered if char != MARK), text  # SentencePiece: ▁ is a space


def test_pieces_are_bertsptokenizers_on_every_shared_sentence(shared_sentences, tokenizer):
    aligner = PieceAligner.from_tokenizer(tokenizer)
    differing = [text for text in shared_sentences if [p.piece for p in aligner.pieces(text)] != tokenizer(text)]
    assert differing == []


def test_spans_hold_their_pieces_characters_on_every_shared_sentence(shared_sentences, aligner):
    normalised = normaliser(aligner.processor)
    for text in shared_sentences:
        check_span_characters(normalised, text, aligner.pieces(text))


def test_tricky_text_pieces_and_spans(tokenizer):
    aligner = PieceAligner.from_tokenizer(tokenizer)
    for text in TRICKY:
        pieces = aligner.pieces(text)
        assert [p.piece for p in pieces] == tokenizer(text), text
        check_span_characters(normaliser(aligner.processor), text, pieces)
        mapped = [p for word, origins in basic_words(text) for p in aligner.mapped_word_pieces(word, origins)]
        assert pieces == mapped, text  # the shortcut for unchanged characters gives SentencePiece's offsets


def test_words_are_gluonnlps_basic_tokens_and_origins_point_at_their_characters():
    reference = nlp.data.BERTBasicTokenizer(lower=False)
    for text in TRICKY:
        words = basic_words(text)
        assert [word for word, _ in words] == reference(text), text
        for word, origins in words:
            assert len(origins) == len(word) and all(0 <= s < e <= len(text) for s, e in origins)


def test_origins_follow_nfd_and_dropped_marks():
    assert basic_words('Cafe\u0301 각 ㈜!') == [
        ('Cafe', [(0, 1), (1, 2), (2, 3), (3, 5)]),  # the dropped combining accent joins its letter
        ('\u1100\u1161\u11a8', [(6, 7)] * 3),  # NFD jamo of 각, all from one character
        ('㈜', [(8, 9)]), ('!', [(9, 10)])]
    assert basic_words('a\u0301\u0323b')[0][1] == [(0, 3), (3, 4)]


def test_known_spans(aligner):
    text = '경찰은 ㈜삼성 … Cafe\u0301'
    assert aligner.pieces(text) == [
        Piece('▁경찰은', 0, 3), Piece('▁(', 4, 5), Piece('주', 4, 5), Piece(')', 4, 5), Piece('삼성', 5, 7),
        Piece('▁', 8, 8), Piece('...', 8, 9), Piece('▁C', 10, 11), Piece('a', 11, 12), Piece('f', 12, 13),
        Piece('e', 13, 15)]


def test_lower_casing_tokenizer_is_refused(kobert_dir):
    _, vocab, files = load_tokenizer(kobert_dir=str(kobert_dir))
    with pytest.raises(ConfigError, match='lower=False'):
        PieceAligner.from_tokenizer(nlp.data.BERTSPTokenizer(files['tokenizer'], vocab, lower=True))


# ---------------------------------------------------------------------------- tags per piece

def expected_round_trip(pieces, entity):
    """Independently: an entity comes back from its first piece that starts inside it to the end
    of its last piece that starts inside it (or not at all)."""
    inside = [p for p in pieces if p.end > p.start and entity.start <= p.start < entity.end]
    return EntitySpan(inside[0].start, inside[-1].end, entity.label) if inside else None


def test_piece_tags_decode_to_what_the_first_character_rule_predicts(shared_dir, aligner):
    for sentence in read_entity_file(shared_dir.joinpath(*KLUE_FILE)):
        pieces = aligner.pieces(sentence.text)
        tags = piece_tags(pieces, sentence.entities)
        expected = [expected_round_trip(pieces, entity) for entity in sentence.entities]
        assert entities_from_piece_tags(pieces, tags) == [span for span in expected if span]
        for index, tag in enumerate(tags):  # strict IOB2 by construction
            check_tag(tag, tags[index - 1] if index else None, sentence.where)


def test_lone_marks_are_inside_an_entity_only_between_its_pieces(aligner):
    text = '회사 S.K. 에서 .박'
    pieces = aligner.pieces(text)
    tags = piece_tags(pieces, [EntitySpan(3, 7, 'OG'), EntitySpan(11, 13, 'PS')])
    assert list(zip([p.piece for p in pieces], tags)) == [
        ('▁회사', 'O'), ('▁S', 'B-OG'), ('▁', 'I-OG'), ('.', 'I-OG'), ('▁K', 'I-OG'), ('▁', 'I-OG'), ('.', 'I-OG'),
        ('▁', 'O'), ('에서', 'O'), ('▁', 'O'), ('.', 'B-PS'), ('▁박', 'I-PS')]
    assert entities_from_piece_tags(pieces, tags) == [EntitySpan(3, 7, 'OG'), EntitySpan(11, 13, 'PS')]
    assert entities_from_piece_tags(pieces, ['O'] * 9 + ['B-PS', 'O', 'O']) == []  # a lone ▁ has no characters


def test_character_tags_spread_a_piece_tag_as_klues_baseline_does(aligner):
    text = '경찰은 ㈜삼성에'
    pieces = aligner.pieces(text)  # ▁경찰은 ▁( 주 ) 삼성 에
    tags = ['B-OG', 'B-OG', 'I-OG', 'I-OG', 'I-OG', 'O']
    assert [p.piece for p in pieces] == ['▁경찰은', '▁(', '주', ')', '삼성', '에']
    assert character_tags(pieces, tags, len(text)) == ['B-OG', 'I-OG', 'I-OG', 'O', 'B-OG', 'I-OG', 'I-OG', 'O']
    assert character_tags(pieces, ['I-PS'] + ['O'] * 5, len(text))[:3] == ['I-PS', 'I-PS', 'I-PS']


ROUND_TRIP = {  # KLUE-NER dev, first 4,000 sentences: gold entities, kept exactly, start or end inside a piece
    'DT': (1839, 1679, 0, 160), 'LC': (1346, 1271, 2, 73), 'OG': (1738, 1476, 10, 253),
    'PS': (3587, 3390, 0, 197), 'QT': (2511, 2171, 2, 338), 'TI': (438, 375, 0, 63)}


def test_round_trip_figure_on_the_shared_klue_sentences(shared_dir, aligner):
    counts = entity_round_trip(aligner, read_entity_file(shared_dir.joinpath(*KLUE_FILE)))
    assert {label: tuple(row.values()) for label, row in counts.items()} == ROUND_TRIP
    total = collections.Counter()
    for row in counts.values():
        total.update(row)
    assert (total['gold'], total['kept']) == (11459, 10362)  # 90.43%
