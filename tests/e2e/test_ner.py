"""Named entities through train, evaluate and predict (--task token_classification): the metrics
checked against seqeval on the same sequences, the offsets against the user's own text, the
windows of --stride against every piece, the loss against numpy's cross-entropy."""
import json
import os

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from kobert_gluon import cli
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.inference.evaluate import evaluate
from kobert_gluon.inference.classifier import EntityTagger
from kobert_gluon.tasks import registry
from kobert_gluon.tasks.inputs import Encoded, Example
from kobert_gluon.tasks.piece_inputs import IGNORE, Window, merge_windows, piece_windows
from kobert_gluon.tasks.tokens import MaskedSoftmaxCELoss
from kobert_gluon.text.entities import tags_from_spans

from helpers import entity_rows, write_entity_jsonl

TASK = registry.get('token_classification')


def spans(record):
    return [(e['start'], e['end'], e['label']) for e in record['entities']]


def seqeval_report(texts, gold, predicted):
    """seqeval's strict IOB2 report over each sentence's character tags."""
    y_true = [tags_from_spans(len(text), spans_) for text, spans_ in zip(texts, gold)]
    y_pred = [tags_from_spans(len(text), spans_) for text, spans_ in zip(texts, predicted)]
    return (f1_score(y_true, y_pred, mode='strict', scheme=IOB2),
            classification_report(y_true, y_pred, mode='strict', scheme=IOB2, output_dict=True, zero_division=0))


def recorded_test_records(run_dir):
    settings = json.load(open(os.path.join(run_dir, 'train_config.json'), encoding='utf-8'))
    positions = json.load(open(os.path.join(run_dir, 'split.json'), encoding='utf-8'))['test']['positions']
    records = [json.loads(line) for line in open(settings['data'], encoding='utf-8')]
    return [records[i] for i in positions]


def test_the_test_report_is_seqevals_entity_f1_on_the_selected_models_predictions(ner_run):
    classifier, run_dir, _ = ner_run
    report = json.loads((run_dir / 'test_report.json').read_text(encoding='utf-8'))
    best = TextClassifier.load(str(run_dir / 'best'))
    assert isinstance(best, EntityTagger) and best.task.name == 'token_classification' == report['task']
    records = recorded_test_records(run_dir)
    texts, gold = [r['text'] for r in records], [spans(r) for r in records]
    f1, by_type = seqeval_report(texts, gold, best.predicted_spans(texts))
    assert report['entity_f1'] == pytest.approx(f1) and report['entity_f1'] > 0.3
    for label, row in report['per_type'].items():
        assert row['f1'] == pytest.approx(by_type[label]['f1-score'])
        assert row['precision'] == pytest.approx(by_type[label]['precision'])
        assert row['support'] == by_type[label]['support']
    assert 0 < report['char_f1'] <= 1 and report['sentences'] == len(records)
    metrics = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text(encoding='utf-8').splitlines()]
    test_row = [row for row in metrics if row['type'] == 'test'][0]
    assert test_row['test_entity_f1'] == pytest.approx(report['entity_f1'])
    assert test_row['test_char_f1'] == pytest.approx(report['char_f1'])
    assert all('valid_entity_f1' in row for row in metrics if row['type'] == 'epoch')
    for name in ('entity_f1.png', 'entity_confusion.png', 'truncation.json'):
        assert (run_dir / name).is_file()
    rows, columns = report['confusion']['rows'], report['confusion']['columns']
    assert rows[-1] == 'spurious' and columns[-1] == 'missed'
    assert [sum(row) for row in report['confusion']['matrix']][:-1] == \
        [report['per_type'][label]['support'] for label in rows[:-1]]


def test_evaluate_on_new_sentences_equals_seqeval_and_the_cli_prints_it(ner_run, tmp_path, capsys):
    classifier, run_dir, _ = ner_run
    records = entity_rows(40, seed=7)
    texts, gold = [r['text'] for r in records], [spans(r) for r in records]
    # the templates repeat training sentences: overlap allowed, it is not what is tested here
    report = evaluate(classifier, texts, gold, allow_overlap=True)
    assert report['entity_f1'] == pytest.approx(seqeval_report(texts, gold, classifier.predicted_spans(texts))[0])
    data = write_entity_jsonl(tmp_path / 'new.jsonl', records)
    code = cli.main(['evaluate', '--model', str(run_dir), '--data', data, '--output', str(tmp_path / 'r.json'),
                     '--allow_overlap'])
    out = capsys.readouterr().out
    assert code == 0
    saved = json.loads((tmp_path / 'r.json').read_text(encoding='utf-8'))
    assert code == 0 and 'KLUE character macro F1' in out and 'micro' in out
    assert saved['entity_f1'] == pytest.approx(report['entity_f1']) and saved['task'] == 'token_classification'


def test_predicted_entities_index_the_users_own_text(ner_run):
    classifier = ner_run[0]
    texts = ['김민수씨는 어제 서울에서 3명을 만났다.', '   오늘  박철수가\t부산으로 떠났다.  ', '', '12명이 인천  시장에서 정수진를 기다렸다.']
    answers = classifier.predict(texts)
    assert len(answers) == 4 and answers[2] == []
    found = 0
    for text, entities in zip(texts, answers):
        for entity in entities:
            assert set(entity) == {'entity_group', 'word', 'start', 'end', 'score'}
            assert text[entity['start']:entity['end']] == entity['word'] and entity['word'] == entity['word'].strip()
            assert entity['entity_group'] in ('PS', 'LC', 'QT') and 0 < entity['score'] <= 1
            found += 1
    assert found >= 3
    records = classifier.predict_records(texts)
    assert [r['entities'] for r in records] == answers and records[1]['text'] == texts[1]


def test_stride_windows_give_every_piece_of_a_long_sentence_its_outputs(ner_run):
    classifier = ner_run[0]
    text = entity_rows(1, seed=3, clauses=4)[0]['text']
    pieces = classifier.pieces(text)
    assert len(pieces) > classifier.max_len - 2 and classifier.stride == 6
    windows = classifier.windows([text])[1]
    assert len(windows) > 1
    logits = classifier.logits([text])[0]
    assert logits.shape == (len(pieces), len(classifier.label_map.names))
    # each piece's row is the one of the window where it is farthest from an edge
    for window in windows:
        alone = classifier.forward(next(classifier.batches([window.encoded], 1)))[0][1:-1]
        for offset in range(window.end - window.start):
            depth = min(offset, window.end - window.start - 1 - offset)
            best = max(min(p - w.start, w.end - 1 - p) for w in windows if w.start <= (p := window.start + offset) < w.end)
            if depth == best:
                np.testing.assert_allclose(logits[window.start + offset], alone[offset], atol=1e-5)
    cut = TextClassifier.load(str(ner_run[1] / 'best'))
    cut.task_settings = {**cut.task_settings, 'stride': 0}
    assert cut.logits([text])[0].shape[0] == cut.max_len - 2


def test_piece_windows_overlap_by_the_stride_and_cover_every_piece():
    assert piece_windows(5, 8, 2) == [(0, 5)]
    assert piece_windows(12, 8, 0) == [(0, 8)]
    assert piece_windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    for n, width, stride in ((37, 8, 3), (9, 8, 7), (100, 6, 1)):
        ranges = piece_windows(n, width, stride)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(b[0] == a[1] - stride for a, b in zip(ranges, ranges[1:]))
    windows = [Window(0, 0, 4, None), Window(0, 2, 6, None)]
    outputs = [np.arange(4)[:, None] + 10.0, np.arange(4)[:, None] + 20.0]
    # pieces 0, 1 from the first window, 2 on a tie from the first, 3 (its last piece) from the second
    assert merge_windows(6, windows, outputs)[:, 0].tolist() == [10, 11, 12, 21, 22, 23]


def test_the_loss_is_cross_entropy_over_the_pieces_cls_sep_and_padding_left_out():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 4)).astype(np.float32)
    labels = np.array([[IGNORE, 1, 3, IGNORE, IGNORE], [IGNORE, 0, 2, 2, IGNORE]], dtype=np.int32)
    loss = MaskedSoftmaxCELoss()(mx.nd.array(logits), mx.nd.array(labels, dtype='int32')).asnumpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = [-sum(log_p[row, i, labels[row, i]] for i in range(5) if labels[row, i] >= 0) for row in range(2)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_max_len_cuts_are_counted_and_windows_cut_nothing(ner_run):
    classifier = ner_run[0]
    records = entity_rows(20, seed=4, clauses=2)
    examples = [Example(r['text'], None, tuple(spans(r))) for r in records]
    names = classifier.label_map.names

    def truncation(stride):
        return TASK.encode_examples(examples, classifier.tokenizer, 12, True, False, names,
                                    {'stride': stride}).truncation
    cut = truncation(0)
    expected_sentences, expected_entities = 0, 0
    for record in records:
        pieces = classifier.pieces(record['text'])
        if len(pieces) > 10:
            expected_sentences += 1
            expected_entities += sum(end > pieces[9].end for _, end, _ in spans(record))
    assert cut == {'sentences': 20, 'cut_sentences': expected_sentences, 'entities': sum(len(r['entities'])
                                                                                         for r in records),
                   'cut_entities': expected_entities} and expected_sentences > 0
    assert truncation(4)['cut_sentences'] == 0


def test_cli_predict_answers_entities_as_text_jsonl_and_a_table_column(ner_run, tmp_path, capsys):
    run_dir = ner_run[1]
    text = '  김민수씨는 어제 서울에서 3명을 만났다.'
    assert cli.main(['predict', '--model', str(run_dir), '--format', 'jsonl', text]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line['text'] == text and line['entities'] == ner_run[0].predict([text])[0]
    table = tmp_path / 'in.tsv'
    pd.DataFrame({'text': [text, '오늘 박철수가 부산으로 떠났다.'], 'id': [1, 2]}).to_csv(table, sep='\t', index=False)
    assert cli.main(['predict', '--model', str(run_dir), '--input', str(table), '--output', str(tmp_path / 'o.tsv')]) == 0
    frame = pd.read_csv(tmp_path / 'o.tsv', sep='\t')
    assert list(frame['id']) == [1, 2]
    assert [json.loads(cell) for cell in frame['entities']] == ner_run[0].predict(list(frame['text']))


def test_a_malformed_entity_file_is_one_error_naming_its_file_and_line(tmp_path, capsys):
    bad = tmp_path / 'bad.conll'
    bad.write_text('김민수 B-PS\n씨는 O\n\n어제 I-LC\n', encoding='utf-8')
    code = cli.main(['train', '--task', 'token_classification', '--data', str(bad), '--bert', 'small',
                     '--output_dir', str(tmp_path / 'run')])
    err = capsys.readouterr().err
    assert code == 2 and f'{bad}: line 4' in err and len(err.strip().splitlines()) == 1


def test_batches_are_scored_on_their_pieces_as_seqeval_scores_the_piece_tags(ner_run):
    classifier = ner_run[0]
    names = classifier.label_map.names
    records = entity_rows(12, seed=9)
    examples = [Example(r['text'], None, tuple(spans(r))) for r in records]
    dataset = TASK.encode_examples(examples, classifier.tokenizer, classifier.max_len, False, False, names,
                                   {'stride': 0})
    batch = next(classifier.batches([Encoded(*item[:3]) for item in dataset],
                                    len(dataset)))
    outputs = classifier.forward(batch)
    width = outputs.shape[1]
    labels = np.full((len(dataset), width), IGNORE)
    for row, item in enumerate(dataset):
        labels[row, :len(item[3])] = item[3]
    report = TASK.report(TASK.collect(outputs, labels), names, {})
    y_true = [[names[i] for i in row[row != IGNORE]] for row in labels]
    y_pred = [[names[i] for i in out.argmax(-1)[row != IGNORE]] for out, row in zip(outputs, labels)]
    assert report['scored_on'] == 'pieces'
    assert report['entity_f1'] == pytest.approx(f1_score(y_true, y_pred, mode='strict', scheme=IOB2))


@pytest.mark.extra  # python-crfsuite: the bench extra
def test_the_benchmarks_entity_rows_run_on_the_shared_klue_sentences(shared_dir, tmp_path):
    pytest.importorskip('pycrfsuite')
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks'))
    import tasks

    rows = tasks.ner_rows(str(shared_dir), str(tmp_path), seeds=3, epochs=5, smoke=True)
    assert [row['setup'] for row in rows] == [*tasks.NER_SETUPS, 'CRF on character n-grams',
                                              'gazetteer of the training entities']
    assert all(row['seeds'] == 1 and row['sentences'] == 200 and len(row['runs']) == 1 for row in rows)
    assert rows[2]['runs'][0]['entity_f1'] > 0.3  # the CRF learns from 160 sentences
    shipped, random = (json.loads((tmp_path / 'runs' / f'ner-{name}-0-1' / 'run_inputs.json').read_text())
                       for name in ('shipped', 'random'))
    assert shipped['bert'] == random['bert'] and shipped['tokenizer'] == random['tokenizer']
    assert shipped['init_from'] != random['init_from']


def test_a_tagger_run_resumes_to_the_uninterrupted_weights_and_selection(tmp_path, tiny, monkeypatch):
    from helpers import assert_same_params, final_params, run_config
    from kobert_gluon.training import finetune

    data = write_entity_jsonl(tmp_path / 'e.jsonl', entity_rows(60, seed=2) + entity_rows(6, seed=3, clauses=3))

    def config(name, **overrides):
        return run_config(tmp_path, data, name, task='token_classification', max_len=24, stride=6, num_epochs=2,
                          learning_rate=5e-3, batch_size=16, **overrides)
    straight = finetune.train(config('straight'))

    def killed(*args):
        raise KeyboardInterrupt('killed after the first checkpoint')
    with monkeypatch.context() as patch:
        patch.setattr(finetune, 'write_plots', killed)
        with pytest.raises(KeyboardInterrupt):
            finetune.train(config('resumed'))
    resumed = finetune.train(config('resumed', resume=True))
    assert_same_params(final_params(tmp_path / 'resumed'), final_params(tmp_path / 'straight'), atol=0)
    assert resumed.test_report == straight.test_report
    for name in ('straight', 'resumed'):
        assert json.loads((tmp_path / name / 'best' / 'config.json').read_text())['task_settings'] == {'stride': 6}


def test_bucketing_pads_targets_as_it_pads_tokens_and_a_cut_is_recorded(tmp_path, tiny):
    from helpers import run_config
    from kobert_gluon.training.finetune import train

    data = write_entity_jsonl(tmp_path / 'e.jsonl', entity_rows(40, seed=5) + entity_rows(8, seed=6, clauses=3))
    tagger = train(run_config(tmp_path, data, 'run', task='token_classification', max_len=16, bucketing=True,
                              select_metric='char_f1'))
    assert set(tagger.test_report['per_type']) <= {'PS', 'LC', 'QT'}
    cut = json.loads((tmp_path / 'run' / 'truncation.json').read_text())
    assert cut['train']['cut_sentences'] > 0 and cut['train']['cut_entities'] > 0
    assert json.loads((tmp_path / 'run' / 'test_report.json').read_text())['select_metric'] == 'char_f1'
