"""benchmarks/ner_baselines.py: the gazetteer and the CRF, the split and the scoring."""
import importlib.util
import os

import pytest

from kobert_gluon.text.entities import EntitySentence, EntitySpan, read_entity_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'benchmarks', 'ner_baselines.py')
KLUE_FILE = ('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')


@pytest.fixture(scope='module')
def baselines():
    spec = importlib.util.spec_from_file_location('ner_baselines', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sentence(text, *entities):
    spans = tuple(EntitySpan(text.index(word), text.index(word) + len(word), label) for word, label in entities)
    return EntitySentence(text, spans, 'train.jsonl', 1)


def test_gazetteer_finds_training_strings_by_longest_match_at_word_starts(baselines):
    train = [sentence('서울 시청에 박씨가', ('서울 시청', 'LC'), ('박', 'PS')),
             sentence('서울에서 박수를', ('서울', 'LC')),  # 박 here is no entity: 1 of 3 times
             sentence('박 선생은 한국에', ('한국', 'LC'))]
    test = [sentence('서울 시청과 한국, 대한민국과 박수', ('서울 시청', 'LC'), ('한국', 'LC'))]
    assert baselines.gazetteer_entries(train) == {'서울 시청': 'LC', '서울': 'LC', '한국': 'LC'}
    [predicted] = baselines.gazetteer(train, test)
    assert predicted == [EntitySpan(0, 5, 'LC'), EntitySpan(7, 9, 'LC')]  # not '한국' inside 대한민국
    scores = baselines.score(test, [predicted])
    assert (scores['entity_f1'], scores['char_f1']) == (1.0, 1.0)


def test_split_is_seeded_disjoint_and_eighty_twenty(baselines):
    sentences = [sentence(f'문장 {i}') for i in range(101)]
    train, test = baselines.split_sentences(sentences, seed=3)
    assert (len(train), len(test)) == (81, 20) and not set(train) & set(test)
    assert baselines.split_sentences(sentences, seed=3) == (train, test)
    assert baselines.split_sentences(sentences, seed=4)[1] != test


@pytest.mark.extra  # python-crfsuite: the bench extra
def test_crf_learns_the_klue_sentences(baselines, shared_dir):
    pytest.importorskip('pycrfsuite')
    sentences = read_entity_file(shared_dir.joinpath(*KLUE_FILE))[:400]
    params = dict(baselines.CRF_PARAMS, max_iterations=40)
    predicted = baselines.crf(sentences[:300], sentences[:300] + sentences[300:], params)
    for test_sentence, spans in zip(sentences, predicted):
        assert spans == sorted(spans) and all(0 <= s < e <= len(test_sentence.text) for s, e, _ in spans)
    seen, unseen = baselines.score(sentences[:300], predicted[:300]), baselines.score(sentences[300:], predicted[300:])
    assert seen['entity_f1'] > 0.8 and 0.2 < unseen['entity_f1'] < seen['entity_f1']


def test_the_run_prints_a_table(baselines, shared_dir, capsys):
    baselines.main(['--shared-dir', str(shared_dir), '--baselines', 'gazetteer', '--seeds', '0', '1'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('KLUE-NER dev, first 4000 sentences, 80/20 split, seeds [0, 1]')
    row = [cell.strip() for cell in lines[3].strip('|').split('|')]
    assert row[0] == 'gazetteer' and 0.4 < float(row[1].split(' ± ')[0]) < 0.6
