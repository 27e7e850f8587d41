"""Entity metrics against seqeval (strict IOB2) and KLUE's character F1 against scikit-learn."""
import json
import random
import warnings

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score as sklearn_f1

from kobert_gluon.tasks.entity_metrics import (MISSED, SPURIOUS, CharacterCounts, EntityConfusion, EntityCounts,
                                               iob2_labels)
from kobert_gluon.text.alignment import PieceAligner, character_tags, piece_tags
from kobert_gluon.text.entities import EntitySpan, read_entity_file, spans_from_tags, tags_from_spans

KLUE_FILE = ('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')
KLUE_TYPES = ['PS', 'LC', 'OG', 'DT', 'TI', 'QT']
KLUE_LABELS = iob2_labels(KLUE_TYPES)  # KLUE's baseline get_labels(): B-PS, I-PS, ..., I-QT, O


def random_tags(generator, length, types=('PS', 'LC', 'OG')):
    """Any mix of O, B- and I- tags: I- after O, I- after another type, B- after B-."""
    choices = ['O'] * 4 + [f'{prefix}-{label}' for label in types for prefix in 'BI']
    return [generator.choice(choices) for _ in range(length)]


def corrupted(generator, tags, types=KLUE_TYPES):
    """A plausible prediction: most tags kept, some changed (type, prefix, O)."""
    result = list(tags)
    for index in range(len(result)):
        roll = generator.random()
        if roll < 0.03:
            result[index] = 'O'
        elif roll < 0.06:
            result[index] = f'{generator.choice("BI")}-{generator.choice(types)}'
        elif roll < 0.08 and result[index] != 'O':
            result[index] = ('I-' if result[index][0] == 'B' else 'B-') + result[index][2:]
    return result


def seqeval_report(gold, predicted):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # undefined ratios: seqeval warns, then uses 0 as we do
        return classification_report(gold, predicted, mode='strict', scheme=IOB2, output_dict=True)


def assert_equals_seqeval(gold, predicted, counts):
    report, reference = counts.report(), seqeval_report(gold, predicted)
    types = sorted(name for name in reference if not name.endswith(' avg'))
    assert sorted(report['per_type']) == types
    for label in types:
        row = report['per_type'][label]
        assert row['precision'] == pytest.approx(reference[label]['precision'], abs=1e-12)
        assert row['recall'] == pytest.approx(reference[label]['recall'], abs=1e-12)
        assert row['f1'] == pytest.approx(reference[label]['f1-score'], abs=1e-12)
        assert row['support'] == reference[label]['support']
    micro = reference['micro avg']
    assert (report['precision'], report['recall'], report['f1']) == pytest.approx(
        (micro['precision'], micro['recall'], micro['f1-score']), abs=1e-12)
    assert report['macro_f1'] == pytest.approx(reference['macro avg']['f1-score'], abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert report['f1'] == pytest.approx(f1_score(gold, predicted, mode='strict', scheme=IOB2), abs=1e-12)
        assert report['precision'] == pytest.approx(precision_score(gold, predicted, mode='strict', scheme=IOB2))
        assert report['recall'] == pytest.approx(recall_score(gold, predicted, mode='strict', scheme=IOB2))


def counts_of(gold, predicted):
    counts = EntityCounts()
    for gold_tags, predicted_tags in zip(gold, predicted):
        counts.add_tags(gold_tags, predicted_tags)
    return counts


def test_entity_scores_equal_seqeval_strict_on_random_ill_formed_sequences():
    generator = random.Random(0)
    for trial in range(300):
        lengths = [generator.randint(0, 25) for _ in range(generator.randint(1, 8))]
        gold = [random_tags(generator, n) for n in lengths]
        predicted = [random_tags(generator, n) if trial % 2 else corrupted(generator, g, ('PS', 'LC', 'OG'))
                     for n, g in zip(lengths, gold)]
        if not any(counts_of(gold, predicted).types()):
            continue  # seqeval's report has no rows to compare
        assert_equals_seqeval(gold, predicted, counts_of(gold, predicted))


@pytest.fixture(scope='module')
def klue_sentences(shared_dir):
    return read_entity_file(shared_dir.joinpath(*KLUE_FILE))


@pytest.fixture(scope='module')
def klue_predictions(klue_sentences, kobert_dir):
    """Gold and 'predicted' character tags: corrupted piece tags spread over characters as KLUE's
    baseline spreads a model's piece predictions (so with I- that start entities)."""
    aligner = PieceAligner(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
    generator, gold, predicted = random.Random(1), [], []
    for sentence in klue_sentences:
        pieces = aligner.pieces(sentence.text)
        tags = corrupted(generator, piece_tags(pieces, sentence.entities))
        gold.append(tags_from_spans(len(sentence.text), sentence.entities))
        predicted.append(character_tags(pieces, tags, len(sentence.text)))
    return gold, predicted


def test_entity_scores_equal_seqeval_strict_on_klue_sentences(klue_predictions):
    gold, predicted = klue_predictions
    counts = counts_of(gold, predicted)
    assert 0.5 < counts.report()['f1'] < 0.95 and counts.report()['support'] == 11459
    assert_equals_seqeval(gold, predicted, counts)


def test_counts_add_up_over_batches_and_travel_as_json(klue_predictions, klue_sentences):
    gold, predicted = klue_predictions
    batches = [counts_of(gold[i:i + 333], predicted[i:i + 333]) for i in range(0, len(gold), 333)]
    summed = sum(batches[1:], batches[0])
    assert summed.report() == counts_of(gold, predicted).report()
    assert EntityCounts.from_dict(json.loads(json.dumps(summed.to_dict()))).report() == summed.report()
    from_spans = EntityCounts()
    for sentence, tags in zip(klue_sentences, predicted):
        from_spans.add(sentence.entities, spans_from_tags(tags))
    assert from_spans.to_dict() == summed.to_dict()


def test_named_types_add_zero_rows():
    counts = EntityCounts().add([EntitySpan(0, 2, 'PS')], [EntitySpan(0, 2, 'PS'), EntitySpan(3, 4, 'LC')])
    report = counts.report(types=['PS', 'LC', 'TI'])
    assert report['per_type']['TI'] == dict(precision=0.0, recall=0.0, f1=0.0, support=0, predicted=0)
    assert (report['precision'], report['recall'], report['macro_f1']) == (0.5, 1.0, pytest.approx(1 / 3))


# ---------------------------------------------------------------------------- KLUE's character F1

def klue_char_macro_f1(gold, predicted, texts, labels):
    """KLUE's baseline: flatten [CLS] + non-space characters + [SEP] per sentence, then sklearn."""
    trues, preds = [], []
    for gold_tags, predicted_tags, text in zip(gold, predicted, texts):
        keep = [i for i, char in enumerate(text) if char != ' ']
        trues += [labels.index('O')] + [labels.index(gold_tags[i]) for i in keep] + [labels.index('O')]
        preds += [labels.index('O')] + [labels.index(predicted_tags[i]) for i in keep] + [labels.index('O')]
    return sklearn_f1(trues, preds, labels=list(range(len(labels))), average='macro', zero_division=True)


def char_counts(gold, predicted, texts):
    counts = CharacterCounts()
    for gold_tags, predicted_tags, text in zip(gold, predicted, texts):
        counts.add_tags(text, gold_tags, predicted_tags)
    return counts


def test_character_macro_f1_equals_klues_on_klue_sentences(klue_predictions, klue_sentences):
    gold, predicted = klue_predictions
    texts = [sentence.text for sentence in klue_sentences]
    counts = char_counts(gold, predicted, texts)
    assert counts.macro_f1(KLUE_LABELS) == pytest.approx(klue_char_macro_f1(gold, predicted, texts, KLUE_LABELS),
                                                          abs=1e-12)
    halves = char_counts(gold[:2000], predicted[:2000], texts) + char_counts(gold[2000:], predicted[2000:], texts[2000:])
    assert CharacterCounts.from_dict(json.loads(json.dumps(halves.to_dict()))).macro_f1(KLUE_LABELS) == \
        counts.macro_f1(KLUE_LABELS)


def test_character_macro_f1_equals_klues_on_random_sequences_with_absent_labels():
    generator = random.Random(2)
    for _ in range(200):
        texts = [''.join(generator.choice('가 나') for _ in range(generator.randint(1, 15))) for _ in range(3)]
        gold = [random_tags(generator, len(text), ('PS',)) for text in texts]  # LC, OG, ... never appear
        predicted = [random_tags(generator, len(text), ('PS', 'LC')) for text in texts]
        expected = klue_char_macro_f1(gold, predicted, texts, KLUE_LABELS)
        assert char_counts(gold, predicted, texts).macro_f1(KLUE_LABELS) == pytest.approx(expected, abs=1e-12)


def test_character_counts_from_spans_skip_spaces_and_add_the_boundaries():
    counts = CharacterCounts().add('박씨 서울', [EntitySpan(0, 1, 'PS'), EntitySpan(3, 5, 'LC')],
                                   [EntitySpan(0, 2, 'PS')])
    assert counts.to_dict() == {'true_positives': {'B-PS': 1, 'O': 2},
                                'predicted': {'B-PS': 1, 'I-PS': 1, 'O': 4},
                                'gold': {'B-LC': 1, 'B-PS': 1, 'I-LC': 1, 'O': 3}}
    plain = CharacterCounts(boundaries=False).add('박씨 서울', [], [])
    assert plain.gold == {'O': 4} and plain.f1('B-TI') == 1.0


# ---------------------------------------------------------------------------- confusion over types

def test_confusion_by_exact_span_with_missed_and_spurious():
    gold = [EntitySpan(0, 2, 'PS'), EntitySpan(3, 5, 'LC'), EntitySpan(6, 8, 'OG')]
    predicted = [EntitySpan(0, 2, 'PS'), EntitySpan(3, 5, 'OG'), EntitySpan(6, 7, 'OG'), EntitySpan(9, 10, 'QT')]
    rows, columns, table = EntityConfusion().add(gold, predicted).matrix()
    assert rows == ['LC', 'OG', 'PS', 'QT', SPURIOUS] and columns == ['LC', 'OG', 'PS', 'QT', MISSED]
    assert table == [[0, 1, 0, 0, 0],   # LC predicted as OG (right span, wrong type)
                     [0, 0, 0, 0, 1],   # OG's span cut short: missed ...
                     [0, 0, 1, 0, 0],
                     [0, 0, 0, 0, 0],
                     [0, 1, 0, 1, 0]]   # ... and the short OG, and QT, spurious


def test_confusion_agrees_with_the_entity_counts_on_klue_sentences(klue_predictions, klue_sentences):
    gold, predicted = klue_predictions
    confusion, counts = EntityConfusion(), EntityCounts()
    for sentence, tags in zip(klue_sentences, predicted):
        confusion.add(sentence.entities, spans_from_tags(tags))
        counts.add(sentence.entities, spans_from_tags(tags))
    confusion = EntityConfusion.from_dict(json.loads(json.dumps(confusion.to_dict())))
    rows, columns, table = confusion.matrix(KLUE_TYPES)
    assert rows[:-1] == columns[:-1] == sorted(KLUE_TYPES)
    for index, label in enumerate(sorted(KLUE_TYPES)):
        assert table[index][index] == counts.true_positives[label]
        assert sum(table[index]) == counts.gold[label]
        assert sum(row[index] for row in table) == counts.predicted[label]
    assert table[-1][-1] == 0 and 0 < sum(table[-1]) and 0 < sum(row[-1] for row in table)
