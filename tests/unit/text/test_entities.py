"""Reading entity files: KLUE's character TSV, CoNLL columns and JSONL, and their errors."""
import collections
import json
import random

import pytest
from seqeval.scheme import IOB2, Tokens

from kobert_gluon.errors import ConfigError, DataError
from kobert_gluon.text.entities import (EntitySpan, detect_entity_format, marked_text, parse_marked_text,
                                        read_entity_file, spans_from_tags, tags_from_spans)

KLUE_FILE = ('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')
KLUE_HEADER = '## 토큰, 레이블 구분자 : \\t\n## 컬럼명 : CHAR\tNE_TAG\n'


def klue_block(sentence_id, chars_and_tags, marked=None):
    """A KLUE sentence: its '##' line (marks written from the tags unless given) and char lines."""
    text = ''.join(char for char, _ in chars_and_tags)
    spans = spans_from_tags([tag for _, tag in chars_and_tags])
    marked = marked_text(text, spans) if marked is None else marked
    return f'## {sentence_id}\t{marked}\n' + ''.join(f'{char}\t{tag}\n' for char, tag in chars_and_tags) + '\n'


PARK = [('박', 'B-PS'), ('씨', 'O'), (' ', 'O'), ('서', 'B-LC'), ('울', 'I-LC'), (' ', 'I-LC'), ('역', 'I-LC')]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return path


def raises_at(path, line, *words, format=None):
    with pytest.raises(DataError) as caught:
        read_entity_file(path, format=format)
    message = str(caught.value)
    assert '\n' not in message and message.startswith(f'{path}: line {line}:'), message
    for word in words:
        assert word in message, message
    return message


# ---------------------------------------------------------------------------- the shared KLUE file

def raw_klue_sentences(path):
    """The file read the way KLUE's baseline reads it: blocks, '##' lines skipped, char\\ttag lines."""
    sentences = []
    for block in path.read_text(encoding='utf-8').strip().split('\n\n'):
        pairs = [line.split('\t') for line in block.split('\n') if not line.startswith('##')]
        sentences.append((''.join(char for char, _ in pairs), [tag for _, tag in pairs]))
    return sentences


def test_shared_klue_file_gives_seqevals_entities_of_its_character_tags(shared_dir):
    path = shared_dir.joinpath(*KLUE_FILE)
    sentences = read_entity_file(path)
    assert len(sentences) == 4000
    raw = raw_klue_sentences(path)
    for sentence, (text, tags) in zip(sentences, raw):
        assert sentence.text == text
        expected = [(e.start, e.end, e.tag) for e in Tokens(tags, IOB2).entities]
        assert [tuple(span) for span in sentence.entities] == expected
    types = collections.Counter(span.label for sentence in sentences for span in sentence.entities)
    b_tags = collections.Counter(tag[2:] for _, tags in raw for tag in tags if tag.startswith('B-'))
    assert types == b_tags and sum(types.values()) == 11459
    assert sentences[0].id == 'klue-ner-v1_dev_00000-wikitree' and sentences[0].line == 6
    assert sentences[1].line == 6 + 1 + len(raw[0][0]) + 1


def test_marks_read_back_as_the_tags_except_next_to_a_literal_angle_bracket(shared_dir):
    path = shared_dir.joinpath(*KLUE_FILE)
    marked_lines = [line.split('\t', 1)[1] for line in path.read_text(encoding='utf-8').split('\n')
                    if line.startswith('## klue-ner')]
    ambiguous = 0
    for sentence, marked in zip(read_entity_file(path), marked_lines):
        assert marked_text(sentence.text, sentence.entities) == marked
        ambiguous += parse_marked_text(marked) != (sentence.text, list(sentence.entities))
    assert ambiguous == 3  # '<<레이:PS>>' and two more: the tags include the '<'


# ---------------------------------------------------------------------------- KLUE format, small files

def test_klue_file_with_spaces_inside_entities_and_crlf(tmp_path):
    text = KLUE_HEADER + klue_block('s1', PARK) + klue_block('s2', [('네', 'O')])
    path = write(tmp_path, 'ner.tsv', text.replace('\n', '\r\n'))
    first, second = read_entity_file(path)
    assert first.text == '박씨 서울 역' and first.entities == (EntitySpan(0, 1, 'PS'), EntitySpan(3, 7, 'LC'))
    assert (first.id, first.line, second.line) == ('s1', 3, 3 + 1 + len(PARK) + 1)
    assert second.entities == () and first.where == f'{path}: line 3'


def test_klue_sentence_without_its_marked_line_is_read_from_its_characters(tmp_path):
    path = write(tmp_path, 'ner.tsv', KLUE_HEADER + '\n' + ''.join(f'{c}\t{t}\n' for c, t in PARK))
    [sentence] = read_entity_file(path, format='klue')
    assert sentence.text == '박씨 서울 역' and sentence.id is None and sentence.line == 4


def test_double_angle_bracket_marks_follow_the_tags_either_way(tmp_path):
    chars = [('<', 'O'), ('레', 'B-PS'), ('이', 'I-PS'), ('>', 'O')]
    with_bracket = [('<', 'B-PS'), ('레', 'I-PS'), ('이', 'I-PS'), ('>', 'O')]
    path = write(tmp_path, 'ner.tsv', klue_block('a', chars, '<<레이:PS>>') + klue_block('b', with_bracket, '<<레이:PS>>'))
    first, second = read_entity_file(path)
    assert first.entities == (EntitySpan(1, 3, 'PS'),) and second.entities == (EntitySpan(0, 3, 'PS'),)


@pytest.mark.parametrize('chars, line, words', [
    ([('박', 'B-PS'), ('씨', 'X')], 3, ["tag 'X'", 'IOB2']),
    ([('박', 'B_PS')], 2, ["tag 'B_PS'"]),
    ([('박', 'E-PS')], 2, ["tag 'E-PS'"]),
    ([('박', 'B-')], 2, ["tag 'B-'"]),
    ([('박', 'I-PS')], 2, ['I-PS starts an entity', 'starts the sentence', 'IOB1']),
    ([('박', 'O'), ('씨', 'I-PS')], 3, ['I-PS starts an entity', 'follows O']),
    ([('박', 'B-PS'), ('씨', 'I-LC')], 3, ['I-LC starts an entity', 'follows B-PS']),
])
def test_klue_tags_outside_strict_iob2_name_their_line(tmp_path, chars, line, words):
    body = f'## s\t{"".join(c for c, _ in chars)}\n' + ''.join(f'{c}\t{t}\n' for c, t in chars)
    raises_at(write(tmp_path, 'ner.tsv', body), line, *words)


@pytest.mark.parametrize('lines, line, words', [
    (['## s\t박씨', '박\tB-PS\textra', '씨\tO'], 2, ['3 fields']),
    (['## s\t박씨', '박\tB-PS', '씨 O'], 3, ['1 field']),
    (['## s\t박씨', '박씨\tB-PS'], 2, ['one character', "'박씨'"]),
    (['## s\t<박:PS>', '박\tB-PS', '', '## t\t씨', ''], 4, ['sentence t has no character lines']),
    (['## s\t박', '## t\t씨', '씨\tO'], 1, ['sentence s has no character lines', 'line 2 starts']),
    (['## s\t  ', ' \tO', ' \tO'], 1, ['no characters']),
    (['## s\t박시', '박\tO', '씨\tO'], 1, ['differ at character 1', 'line 3']),
    (['## s\t<박:PS>씨', '박\tO', '씨\tO'], 1, ['line 2', "marks have '박' as PS"]),
    (['## s\t박<씨:PS>', '박\tB-PS', '씨\tO'], 1, ['line 2', "tags have '박' as PS"]),
])
def test_malformed_klue_lines_name_their_line(tmp_path, lines, line, words):
    raises_at(write(tmp_path, 'ner.tsv', '\n'.join(lines) + '\n'), line, *words)


@pytest.mark.parametrize('content, words', [
    ('', ['the file is empty']),
    (KLUE_HEADER + '\n', ['no sentences found', 'klue']),
    ('\n\n  \n', ['no sentences found']),
])
def test_files_without_sentences(tmp_path, content, words):
    path = write(tmp_path, 'ner.tsv', content)
    with pytest.raises(DataError, match='|'.join(words)) as caught:
        read_entity_file(path)
    assert str(path) in str(caught.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match='no such file'):
        read_entity_file(tmp_path / 'absent.tsv')
    with pytest.raises(ConfigError, match="format='iob'"):
        read_entity_file(write(tmp_path, 'a.tsv', 'x\tO\n'), format='iob')


# ---------------------------------------------------------------------------- CoNLL

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_tokens_join_with_spaces_and_entities_get_character_offsets(tmp_path):
    first, second = read_entity_file(write(tmp_path, 'train.conll', CONLL))
    assert first.text == 'EU rejects German call .' and first.line == 3
    assert [(first.text[s:e], label) for s, e, label in first.entities] == [('EU', 'ORG'), ('German', 'MISC')]
    assert second.text == 'Peter Blackburn' and second.entities == (EntitySpan(0, 15, 'PER'),)
    assert second.line == 9


def test_conll_with_tabs_and_a_token_containing_a_space(tmp_path):
    path = write(tmp_path, 'data.txt', '서울\tB-LC\n시청\tI-LC\n에서\tO\n\nNew York\tB-LC\n')
    first, second = read_entity_file(path)
    assert first.text == '서울 시청 에서' and first.entities == (EntitySpan(0, 5, 'LC'),)
    assert second.text == 'New York' and second.entities == (EntitySpan(0, 8, 'LC'),)


@pytest.mark.parametrize('content, line, words', [
    ('EU NNP B-ORG\nrejects VBZ\n', 2, ['has 2 fields', 'line 1 has 3']),
    ('EU B-ORG\nrejects VBZ O\n', 2, ['has 3 fields', 'line 1 has 2']),
    ('EU\n', 1, ['found one field']),
    ('EU I-ORG\n', 1, ['I-ORG starts an entity', 'IOB1']),
    ('EU B-ORG\nis O\n\nnot S-ORG\n', 4, ["tag 'S-ORG'"]),
])
def test_malformed_conll_lines_name_their_line(tmp_path, content, line, words):
    raises_at(write(tmp_path, 'data.conll', content), line, *words)


# ---------------------------------------------------------------------------- JSONL

def jsonl(*records):
    return '\n'.join(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
                     for record in records) + '\n'


def test_jsonl_entities_are_sorted_and_keep_the_text_exactly(tmp_path):
    record = {'text': '  박씨는\n서울에', 'entities': [{'start': 5, 'end': 7, 'label': 'LC'},
                                                   {'start': 2, 'end': 3, 'label': 'PS'}], 'id': 7}
    path = write(tmp_path, 'ner.jsonl', jsonl(record, '', {'text': '없음', 'entities': []}))
    first, second = read_entity_file(path)
    assert first.text == record['text'] and first.entities == (EntitySpan(2, 3, 'PS'), EntitySpan(5, 7, 'LC'))
    assert (first.line, first.id, second.line, second.entities) == (1, 7, 3, ())


GOOD = {'text': '박씨는 서울에', 'entities': [{'start': 0, 'end': 1, 'label': 'PS'}]}


def entity(**changes):
    return {'text': '박씨는 서울에', 'entities': [dict(GOOD['entities'][0], **changes)]}


@pytest.mark.parametrize('record, words', [
    ('{"text": "박씨", "entities": [}', ['not valid JSON', 'column']),
    ('[1, 2]', ['expected a JSON object', 'list']),
    ({'entities': []}, ['"text" must be a string', 'NoneType']),
    ({'text': ' ', 'entities': []}, ['no characters']),
    ('{"text": "\\ud800", "entities": []}', ['not valid Unicode']),
    ({'text': '박씨'}, ['"entities" must be a list']),
    ({'text': '박씨', 'entities': [[0, 1, 'PS']]}, ['entity 1', 'expected an object']),
    ({'text': '박씨', 'entities': [{'start': 0, 'end': 1}]}, ['entity 1', '"label"']),
    (entity(start=0.0), ['"start" must be a whole number']),
    (entity(end=True), ['"end" must be a whole number']),
    (entity(label='B-PS'), ["'B-PS', a tag", 'entity type alone']),
    (entity(label='O'), ["'O', a tag"]),
    (entity(label='P S'), ['must be an entity type']),
    (entity(label=3), ['must be an entity type']),
    (entity(end=99), ['entity 1 (0-99 PS) is outside the text', '7 characters']),
    (entity(start=-1), ['outside the text']),
    (entity(start=1, end=1), ['outside the text']),
    ({'text': '박씨는 서울에', 'entities': [{'start': 4, 'end': 6, 'label': 'LC'},
                                         {'start': 0, 'end': 5, 'label': 'PS'}]}, ['0-5 PS and 4-6 LC overlap']),
])
def test_malformed_jsonl_lines_name_their_line(tmp_path, record, words):
    raises_at(write(tmp_path, 'ner.jsonl', jsonl(GOOD, record)), 2, *words)


# ---------------------------------------------------------------------------- format and tags

@pytest.mark.parametrize('name, first_line, expected', [
    ('a.jsonl', 'x', 'jsonl'), ('a.json', '##', 'jsonl'), ('a.conll', '## x', 'conll'),
    ('a.tsv', '## 토큰', 'klue'), ('a.txt', '  {"text": "x"}', 'jsonl'), ('a.tsv', 'EU B-ORG', 'conll'),
])
def test_format_from_suffix_then_first_line(name, first_line, expected):
    assert detect_entity_format(name, ['', first_line]) == expected


def test_tags_and_spans_round_trip_on_random_entities():
    generator = random.Random(3)
    for _ in range(500):
        length, spans, position = generator.randint(0, 30), [], 0
        while position < length:
            start = generator.randint(position, length)
            end = generator.randint(start, length)
            if end > start:
                spans.append(EntitySpan(start, end, generator.choice(['PS', 'LC'])))
            position = end + generator.randint(0, 2)  # adjacent entities too
        tags = tags_from_spans(length, spans)
        assert len(tags) == length and spans_from_tags(tags) == spans
