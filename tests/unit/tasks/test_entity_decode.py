"""Entity decoding: transformers' token-classification pipeline (simple aggregation) on our pieces."""
import importlib.util

import numpy as np
import pytest

from kobert_gluon.tasks.entity_decode import decode_entities, entity_type, group_tokens, softmax
from kobert_gluon.text.alignment import Piece, PieceAligner
from kobert_gluon.text.entities import read_entity_file

KLUE_FILE = ('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')
LABELS = [f'{prefix}-{label}' for label in ('PS', 'LC', 'OG', 'DT', 'TI', 'QT') for prefix in 'BI'] + ['O']
ODD_TEXTS = ['㈜삼성 박(33)씨  Café 漢字 … 서울 시청', '  앞뒤 공백  ', 'A.B.C 회사의 10:30~11:00, 3.5%!?']


def one_hot(tags, confidence=0.9):
    rows = np.full((len(tags), len(LABELS)), (1 - confidence) / (len(LABELS) - 1), dtype=np.float32)
    for row, tag in enumerate(tags):
        rows[row, LABELS.index(tag)] = confidence
    return rows


def test_groups_follow_the_pipelines_rule():
    tags = ['O', 'I-PS', 'I-PS', 'B-PS', 'B-PS', 'I-LC', 'O', 'O', 'B-OG', 'I-OG', 'I-PS']
    assert group_tokens(tags) == [(0, 0), (1, 2), (3, 3), (4, 4), (5, 5), (6, 7), (8, 9), (10, 10)]
    assert [entity_type(tag) for tag in ('B-PS', 'I-LC', 'O', 'MISC')] == ['PS', 'LC', 'O', 'MISC']


def test_decode_places_entities_on_the_original_characters():
    text = '박씨는  서울 시청에'
    pieces = [Piece('▁박', 0, 1), Piece('씨는', 1, 3), Piece('▁서울', 5, 7), Piece('▁시청', 8, 10), Piece('에', 10, 11)]
    probabilities = one_hot(['B-PS', 'O', 'B-LC', 'I-LC', 'O'])
    probabilities[3] = one_hot(['I-LC'], 0.5)[0]
    assert decode_entities(text, pieces, probabilities, LABELS) == [
        {'entity_group': 'PS', 'word': '박', 'start': 0, 'end': 1, 'score': pytest.approx(0.9)},
        {'entity_group': 'LC', 'word': '서울 시청', 'start': 5, 'end': 10, 'score': pytest.approx(0.7)}]


def test_lone_marks_add_no_characters_and_alone_are_dropped():
    text = '박 .'
    pieces = [Piece('▁박', 0, 1), Piece('▁', 2, 2), Piece('.', 2, 3)]
    assert [e['word'] for e in decode_entities(text, pieces, one_hot(['B-PS', 'I-PS', 'O']), LABELS)] == ['박']
    assert decode_entities(text, pieces, one_hot(['O', 'B-PS', 'O']), LABELS) == []
    with pytest.raises(ValueError, match='3 pieces but 2 rows'):
        decode_entities(text, pieces, one_hot(['O', 'O']), LABELS)
    assert decode_entities('', [], np.zeros((0, len(LABELS)), dtype=np.float32), LABELS) == []


def test_softmax_matches_the_pipelines_formula():
    logits = np.random.RandomState(0).randn(7, len(LABELS)).astype(np.float32) * 5
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_array_equal(softmax(logits), expected / expected.sum(-1, keepdims=True))
    assert softmax(logits).dtype == np.float32


# ---------------------------------------------------------------------------- against transformers

needs_transformers = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ('torch', 'transformers', 'tokenizers')),
    reason='needs torch, transformers and tokenizers (the convert or bench extra)')


@pytest.fixture(scope='module')
def pipeline_setup(kobert_dir):
    """A tiny random BertForTokenClassification (sharp logits, so every kind of group occurs),
    our transformers tokenizer, and the pipeline over them."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast, pipeline

    from kobert_gluon.interop.hf_tokenizer import SPECIAL_TOKENS, build_hf_tokenizer
    from kobert_gluon.text.tokenizer import load_tokenizer

    gluon_tokenizer, vocab, files = load_tokenizer(kobert_dir=str(kobert_dir))
    fast = PreTrainedTokenizerFast(tokenizer_object=build_hf_tokenizer(files['tokenizer'], vocab, 512),
                                   **SPECIAL_TOKENS)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(LABELS),
                        id2label=dict(enumerate(LABELS)), label2id={tag: i for i, tag in enumerate(LABELS)})
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(30)
    tagger = pipeline('token-classification', model=model, tokenizer=fast, aggregation_strategy='simple', device='cpu')
    return fast, model, tagger, PieceAligner.from_tokenizer(gluon_tokenizer)


def model_outputs(fast, model, text):
    """Per-token probabilities (no [CLS]/[SEP]), the tokens and their fast-tokenizer offsets."""
    import torch

    encoded = fast(text, return_tensors='pt', return_offsets_mapping=True)
    offsets = [tuple(pair) for pair in encoded.pop('offset_mapping')[0, 1:-1].tolist()]
    with torch.no_grad():
        logits = model(**encoded).logits[0, 1:-1].numpy()
    return softmax(logits), fast.convert_ids_to_tokens(encoded['input_ids'][0, 1:-1]), offsets


@pytest.fixture(scope='module')
def texts(shared_dir):
    return [sentence.text for sentence in read_entity_file(shared_dir.joinpath(*KLUE_FILE))[:200]] + ODD_TEXTS


@needs_transformers
@pytest.mark.extra
def test_with_the_tokenizers_offsets_decode_is_the_pipeline(pipeline_setup, texts):
    fast, model, tagger, _ = pipeline_setup
    compared = 0
    for text in texts:
        probabilities, tokens, offsets = model_outputs(fast, model, text)
        ours = decode_entities(text, [Piece(t, s, e) for t, (s, e) in zip(tokens, offsets)], probabilities, LABELS)
        theirs = tagger(text)
        assert [(e['entity_group'], e['start'], e['end']) for e in ours] == \
               [(e['entity_group'], e['start'], e['end']) for e in theirs], text
        assert [e['score'] for e in ours] == pytest.approx([float(e['score']) for e in theirs], abs=1e-6)
        compared += len(theirs)
    assert compared > 2000


@needs_transformers
@pytest.mark.extra
def test_with_our_spans_only_the_documented_placements_differ(pipeline_setup, texts):
    """Per group of tokens: the pipeline's start is ours or the character before (the space or
    split-off point its '▁' stands for); its end is ours unless the group ends in a lone '▁'."""
    fast, model, _, aligner = pipeline_setup
    seen = set()
    for text in texts:
        probabilities, tokens, offsets = model_outputs(fast, model, text)
        pieces = aligner.pieces(text)
        assert [p.piece for p in pieces] == [t if t != '[UNK]' else p.piece for t, p in zip(tokens, pieces)]
        tags = [LABELS[i] for i in probabilities.argmax(-1)]
        ours = iter(decode_entities(text, pieces, probabilities, LABELS))
        for first, last in group_tokens(tags):
            if entity_type(tags[first]) == 'O':
                continue
            if all(p.start == p.end for p in pieces[first:last + 1]):
                seen.add('lone marks only: dropped')
                continue
            entity = next(ours)
            assert entity['word'] == text[entity['start']:entity['end']]
            start, end = offsets[first][0], offsets[last][1]
            assert start in (entity['start'], entity['start'] - 1), (text, entity)
            assert end == entity['end'] or pieces[last].start == pieces[last].end, (text, entity)
            seen.add('start one before' if start < entity['start'] else 'same start')
            seen.add('same end' if end == entity['end'] else 'end after a lone mark')
        assert next(ours, None) is None
    assert seen == {'same start', 'start one before', 'same end', 'end after a lone mark', 'lone marks only: dropped'}
