"""Honest model selection: a validation split picks best/, the test set is reported once on the
selected model, early stopping, and a split that is stable and recorded."""
import json
import logging
import shutil

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kobert_gluon import cli

from kobert_gluon.training import plots
from kobert_gluon.training import finetune as train_module
from kobert_gluon.inference.metrics import classification_report
from kobert_gluon.training.splits import load_splits
from kobert_gluon.training.finetune import train

from helpers import demo_frame, final_params, run_config, write_small_data


REAL_EVALUATE = train_module.evaluate_split


@pytest.fixture
def small_data(tmp_path):
    return write_small_data(tmp_path, rows=120)


def test_three_way_split_is_disjoint_covering_stable_and_recorded(tmp_path, small_data):
    config = run_config(tmp_path, small_data, 'run')
    splits, again = load_splits(config), load_splits(config)
    positions = {name: set(part['positions']) for name, part in splits.record.items()}

    assert splits.record == again.record
    assert set.union(*positions.values()) == set(range(120))
    assert sum(len(p) for p in positions.values()) == 120
    # each label's share is rounded on its own: 20% of 120 rows, then 10% of the remaining 96
    assert len(positions['test']) == 24 and abs(len(positions['valid']) - 9.6) <= 1
    frame = demo_frame(120)
    for name, rows in (('train', splits.train), ('valid', splits.valid), ('test', splits.test)):
        expected = frame.iloc[sorted(positions[name])]
        assert sorted(row.text for row in rows) == sorted(expected['text'])
        assert splits.record[name]['rows'] == len(rows)
    other_seed = load_splits(run_config(tmp_path, small_data, 'run', seed=7)).record
    assert other_seed['valid']['positions'] != splits.record['valid']['positions']


def test_validation_and_test_rows_never_reach_training_batches(tmp_path, small_data, tiny, monkeypatch):
    seen = {'train': [], 'other': []}
    original = train_module.make_loader

    def recording_loader(dataset, config, shuffle, pad_id, engine=None, task=None):
        loader = original(dataset, config, shuffle, pad_id, engine, task)
        for token_ids, valid_length, _, _ in loader:
            rows = [tuple(ids[:int(n)]) for ids, n in zip(token_ids.asnumpy(), valid_length.asnumpy())]
            seen['train' if shuffle else 'other'].extend(rows)
        return loader
    monkeypatch.setattr(train_module, 'make_loader', recording_loader)
    classifier = train(run_config(tmp_path, small_data, 'run'))

    splits = load_splits(run_config(tmp_path, small_data, 'run'))
    encode = classifier.encode
    held_out = {tuple(ids) for ids, _, _ in encode([row.text for row in splits.valid + splits.test])}
    trained = {tuple(ids) for ids, _, _ in encode([row.text for row in splits.train])}
    assert set(seen['train']) == trained
    assert not set(seen['train']) & held_out
    assert held_out <= set(seen['other'])


def report_with_accuracy(accuracy, rows=100):
    """A real classification report whose accuracy is ``accuracy`` (2 classes)."""
    labels = np.zeros(rows, dtype=int)
    predictions = np.where(np.arange(rows) < round(accuracy * rows), 0, 1)
    return classification_report(labels, predictions, 2)


def scripted_evaluations(monkeypatch, valid):
    """evaluate() returns the given validation accuracies epoch by epoch; the final test of best/
    is real (and the only pass over the test set)."""
    calls = {'validating': iter(valid)}

    def scripted(run, loader, desc, every_rank=True, part=None):
        if desc in calls:
            return report_with_accuracy(next(calls[desc])), None
        assert desc == 'testing the selected model', desc
        return REAL_EVALUATE(run, loader, desc, every_rank)
    monkeypatch.setattr(train_module, 'evaluate_split', scripted)


def snapshot_each_epoch(monkeypatch, run_dir):
    """Copy last/'s weights after every epoch's checkpoint."""
    snapshots = []
    original = train_module.write_plots

    def snapshot(run, history):
        target = run_dir.parent / f'epoch{len(snapshots) + 1}'
        shutil.copytree(run_dir / 'last' / 'model', target)
        snapshots.append(target)
        return original(run, history)
    monkeypatch.setattr(train_module, 'write_plots', snapshot)
    return snapshots


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[name].asnumpy(), b[name].asnumpy()) for name in a)


def test_best_follows_validation_when_validation_and_test_disagree(tmp_path, small_data, tiny, monkeypatch):
    scripted_evaluations(monkeypatch, valid=[0.5, 0.9, 0.7])
    snapshots = snapshot_each_epoch(monkeypatch, tmp_path / 'run')
    classifier = train(run_config(tmp_path, small_data, 'run', num_epochs=3))

    assert_same_weights(final_params(tmp_path / 'run', 'best'), final_params(snapshots[1].parent, snapshots[1].name))
    report = json.loads((tmp_path / 'run' / 'test_report.json').read_text())
    assert (report['selected_epoch'], report['select_metric'], report['validation_value']) == (2, 'accuracy', 0.9)
    assert 'once, on the selected model' in report['evaluated']
    assert report['accuracy'] == classifier.test_report['accuracy']
    assert [e['valid']['accuracy'] for e in classifier.history['epochs']] == [0.5, 0.9, 0.7]


def test_macro_f1_can_select(tmp_path, small_data, tiny, monkeypatch):
    # accuracy rises every epoch but macro-F1 peaks in epoch 1
    reports = [classification_report([0, 0, 1, 1], [0, 1, 1, 0], 2), classification_report([0, 0, 0, 1], [0, 0, 0, 0], 2)]
    assert reports[1]['accuracy'] > reports[0]['accuracy'] and reports[1]['macro_f1'] < reports[0]['macro_f1']
    calls = iter(reports)
    monkeypatch.setattr(train_module, 'evaluate_split', lambda run, loader, desc, every_rank=True, part=None: (
        (next(calls), None) if desc == 'validating' else REAL_EVALUATE(run, loader, desc, every_rank)))
    snapshots = snapshot_each_epoch(monkeypatch, tmp_path / 'run')
    train(run_config(tmp_path, small_data, 'run', num_epochs=2, select_metric='macro_f1'))
    assert_same_weights(final_params(tmp_path / 'run', 'best'), final_params(snapshots[0].parent, snapshots[0].name))


def test_early_stopping_stops_at_the_right_epoch_and_a_resume_finishes_at_once(tmp_path, small_data, tiny,
                                                                               monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    scripted_evaluations(monkeypatch, valid=[0.5, 0.6, 0.6, 0.55, 0.9])
    classifier = train(run_config(tmp_path, small_data, 'run', num_epochs=5, early_stopping=2))
    assert [e['epoch'] for e in classifier.history['epochs']] == [1, 2, 3, 4]
    assert json.loads((tmp_path / 'run' / 'test_report.json').read_text())['selected_epoch'] == 2
    assert 'early stopping after epoch 4' in caplog.text
    best = final_params(tmp_path / 'run', 'best')

    def only_the_final_test(run, loader, desc, every_rank=True, part=None):
        if desc in ('validating', 'testing'):
            pytest.fail('a stopped run trained another epoch')
        return REAL_EVALUATE(run, loader, desc, every_rank)
    monkeypatch.setattr(train_module, 'evaluate_split', only_the_final_test)
    again = train(run_config(tmp_path, small_data, 'run', num_epochs=5, early_stopping=2, resume=True))
    assert [e['epoch'] for e in again.history['epochs']] == [1, 2, 3, 4]
    assert_same_weights(final_params(tmp_path / 'run', 'best'), best)


def test_without_validation_best_is_the_last_epoch(tmp_path, small_data, tiny, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    classifier = train(run_config(tmp_path, small_data, 'run', num_epochs=2, valid_size=0.0))
    assert_same_weights(final_params(tmp_path / 'run', 'best'), final_params(tmp_path / 'run'))
    report = json.loads((tmp_path / 'run' / 'test_report.json').read_text())
    assert (report['selected_epoch'], report['select_metric']) == (2, None)
    assert 'no model selection' in caplog.text and 'no validation set, so no selection' in caplog.text
    assert all(e['valid'] is None for e in classifier.history['epochs'])


def test_a_separate_validation_file_is_used(tmp_path, small_data, tiny):
    frame = demo_frame(160).iloc[120:]
    valid = tmp_path / 'valid.tsv'
    frame.to_csv(valid, sep='\t', index=False)
    classifier = train(run_config(tmp_path, small_data, 'run', valid_data=str(valid)))
    split = json.loads((tmp_path / 'run' / 'split.json').read_text())
    assert split['valid']['source'] == 'valid.tsv' and split['valid']['rows'] == 40
    assert sum(classifier.history['epochs'][0]['valid']['support']) == 40
    assert split['train']['rows'] + split['test']['rows'] == 120


def test_evaluate_tells_the_test_split_from_training_rows(tmp_path, small_data, tiny, capsys, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    train(run_config(tmp_path, small_data, 'run'))
    splits = load_splits(run_config(tmp_path, small_data, 'run'))
    names = splits.label_map.names
    for name, rows in (('test', splits.test[::-1]), ('train', splits.train)):
        pd.DataFrame([(row.text, names[row.label]) for row in rows], columns=['text', 'label']).to_csv(
            tmp_path / f'{name}.tsv', sep='\t', index=False)
    assert cli.main(['evaluate', '--model', str(tmp_path / 'run' / 'best'), '--data', str(tmp_path / 'test.tsv')]) == 0
    assert 'is the test split recorded with this model' in caplog.text
    # The model's own training rows: refused (all of them overlap), then scored on request with the warning.
    assert cli.main(['evaluate', '--model', str(tmp_path / 'run' / 'best'), '--data', str(tmp_path / 'train.tsv')]) == 2
    assert f'{len(splits.train)} of {len(splits.train)}' in capsys.readouterr().err
    assert cli.main(['evaluate', '--model', str(tmp_path / 'run' / 'best'), '--data', str(tmp_path / 'train.tsv'),
                     '--allow_overlap']) == 0
    assert 'is the train split this model was trained on' in caplog.text


def test_accuracy_plot_shows_validation_and_the_selected_models_test_score():
    epochs = [{'epoch': e, 'train_accuracy': 0.5 + e / 10, 'valid': {'accuracy': 0.5}} for e in (1, 2)]
    with matplotlib.rc_context(plots._font_rc()):
        figure = plots._draw_accuracy(epochs, test_point=(1, 0.4))
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ['학습 (train)', '검증 (validation)',
                                                    '평가, 선택된 모델 (test, selected model)']
    assert list(lines[-1].get_xdata()) == [1] and list(lines[-1].get_ydata()) == [0.4]
