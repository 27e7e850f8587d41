"""Sentence pairs, scores and several labels through every command: train (and resume),
evaluate, predict, export; each checked against the model's own outputs computed another way
(scikit-learn / scipy on its predictions, gluonnlp's transform for its inputs)."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as sk

from kobert_gluon import cli
from kobert_gluon.errors import ConfigError, DataError
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.inference.export import export
from kobert_gluon.training.finetune import train

from helpers import TASK_SETTINGS as SETTINGS, assert_same_params, final_params, pair_rows, task_config

def test_the_test_report_is_the_task_metric_of_the_selected_models_predictions(task_runs):
    for name in ('nli', 'sts', 'multi'):
        classifier = task_runs[name]
        report = json.loads(open(os.path.join(classifier.run_dir, 'test_report.json'), encoding='utf-8').read())
        best = TextClassifier.load(os.path.join(classifier.run_dir, 'best'))
        test = recorded_test_rows(classifier.run_dir)
        inputs = list(zip(test['sentence1'], test['sentence2'])) if best.pair else list(test['text'])
        answers = padded_answers(best, inputs)
        assert report['task'] == best.task.name == ('classification' if name == 'nli' else best.task.name)
        if name == 'nli':
            assert report['accuracy'] == pytest.approx(sk.accuracy_score(test['gold_label'], answers))
        elif name == 'sts':
            gold = test['score'].astype(float)
            assert report['spearman'] == pytest.approx(stats.spearmanr(gold, answers)[0], abs=1e-6)
            assert report['pearson'] == pytest.approx(stats.pearsonr(gold, answers)[0], abs=1e-6)
            assert report['mse'] == pytest.approx(sk.mean_squared_error(gold, answers), rel=1e-5)
        else:
            names = best.label_map.names
            gold = [[name in labels.split(',') for name in names] for labels in test['labels']]
            predicted = [[name in labels for name in names] for labels in answers]
            assert report['micro_f1'] == pytest.approx(sk.f1_score(gold, predicted, average='micro', zero_division=0))
            assert report['macro_f1'] == pytest.approx(sk.f1_score(gold, predicted, average='macro', zero_division=0))
            assert report['exact_match'] == pytest.approx(sk.accuracy_score(gold, predicted))
            assert report['threshold'] == 0.4 == best.task_settings['threshold']


def padded_answers(classifier, inputs):
    """predict()'s answers in the batches of training's test loader (8 rows, padded to max_len): close
    scores would otherwise be reordered by float rounding alone, which moves Spearman's figure."""
    batches = classifier.batches(classifier.encode(inputs), 8, width=classifier.max_len)
    outputs = np.concatenate([classifier.forward(batch) for batch in batches])
    return classifier.task.answers(outputs, classifier.label_map.names, classifier.task_settings)


def recorded_test_rows(run_dir):
    """The run's recorded test rows, from its data file and split.json."""
    settings = json.load(open(os.path.join(run_dir, 'train_config.json'), encoding='utf-8'))
    positions = json.load(open(os.path.join(run_dir, 'split.json'), encoding='utf-8'))['test']['positions']
    return pd.read_csv(settings['data'], sep='\t', dtype=str, keep_default_na=False).iloc[positions]


def test_metrics_jsonl_and_plots_suit_the_task(task_runs):
    expected = {'nli': ('accuracy', ['accuracy', 'macro_f1'], 'confusion_matrix.png', 'accuracy.png'),
                'sts': ('mse', ['pearson', 'spearman', 'mse'], 'scatter.png', 'mse.png'),
                'multi': ('exact_match', ['micro_f1', 'macro_f1', 'exact_match'], 'label_f1.png', 'exact_match.png')}
    for name, (running, metrics, figure, per_epoch) in expected.items():
        run_dir = task_runs[name].run_dir
        with open(os.path.join(run_dir, 'metrics.jsonl'), encoding='utf-8') as source:
            records = [json.loads(line) for line in source]
        epoch = next(record for record in records if record['type'] == 'epoch')
        test = next(record for record in records if record['type'] == 'test')
        assert f'train_{running}' in epoch and all(f'valid_{metric}' in epoch for metric in metrics)
        assert sorted(key[5:] for key in test if key.startswith('test_')) == sorted(metrics)
        assert os.path.isfile(os.path.join(run_dir, figure)) and os.path.isfile(os.path.join(run_dir, per_epoch))


def test_model_directories_record_the_task_and_reload_identically(task_runs):
    sts = TextClassifier.load(os.path.join(task_runs['sts'].run_dir, 'best'))
    config = json.load(open(os.path.join(task_runs['sts'].run_dir, 'best', 'config.json'), encoding='utf-8'))
    assert (config['task'], config['pair'], config['num_classes'], config['labels']) == \
        ('regression', True, 1, {'score': 0})
    multi = json.load(open(os.path.join(task_runs['columns'].run_dir, 'best', 'config.json'), encoding='utf-8'))
    assert multi['labels'] == {'날씨': 0, '음식': 1, '운동': 2} and multi['task_settings'] == {'threshold': 0.5}
    pairs = [('오늘 비가 많이', '하늘이 맑아요'), ('김치찌개가 맛있어요', '축구를 했어요')]
    scores = sts.predict(pairs)
    assert all(isinstance(score, float) for score in scores)
    np.testing.assert_allclose(scores, sts.logits(pairs)[:, 0])
    records = sts.predict_records(pairs + [('', '')])
    assert records[0] == {'text': pairs[0][0], 'text_pair': pairs[0][1], 'score': scores[0]}
    assert records[-1]['score'] is None


def test_a_pair_model_refuses_single_texts_and_a_single_model_refuses_pairs(task_runs):
    pair_model, single = task_runs['nli'], task_runs['multi']
    with pytest.raises(ConfigError, match=r'texts\[0\] is str: this model reads sentence pairs'):
        pair_model.predict(['한 문장'])
    with pytest.raises(ConfigError, match=r'texts\[1\] is a pair .*reads single sentences'):
        single.predict(['한 문장', ('두', '문장')])


def test_multi_label_threshold_is_settable_per_call(task_runs):
    model = task_runs['multi']
    texts = ['오늘 비가 많이 김치찌개가 맛있어요', '축구를 했어요 야구가 재밌어요']
    probabilities = model.predict_proba(texts)
    for threshold in (0.1, 0.5, 0.9):
        expected = [[name for name, p in zip(model.label_map.names, row) if p > threshold] for row in probabilities]
        assert model.predict(texts, threshold=threshold) == expected
    with pytest.raises(ConfigError, match='threshold=1.5 must be a number between 0 and 1'):
        model.predict(texts, threshold=1.5)


def test_a_regression_run_resumes_to_the_uninterrupted_weights(tmp_path, task_data, tiny, monkeypatch):
    from kobert_gluon.training import finetune

    train(task_config(tmp_path, task_data, 'sts', output_dir=str(tmp_path / 'straight')))

    def killed(*args):
        raise KeyboardInterrupt('killed after the first checkpoint')
    with monkeypatch.context() as patch:
        patch.setattr(finetune, 'write_plots', killed)
        with pytest.raises(KeyboardInterrupt):
            train(task_config(tmp_path, task_data, 'sts', output_dir=str(tmp_path / 'resumed')))
    train(task_config(tmp_path, task_data, 'sts', output_dir=str(tmp_path / 'resumed'), resume=True))
    assert_same_params(final_params(tmp_path / 'resumed'), final_params(tmp_path / 'straight'), atol=0)


def run_cli(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_evaluate_prints_the_tasks_report_on_its_own_test_split(task_runs, capsys, tmp_path):
    code, out, _ = run_cli(capsys, 'evaluate', '--model', task_runs['sts'].run_dir, '--output', tmp_path / 'r.json')
    assert code == 0 and 'Spearman' in out and 'Pearson' in out
    saved = json.loads((tmp_path / 'r.json').read_text(encoding='utf-8'))
    test_report = json.loads(open(os.path.join(task_runs['sts'].run_dir, 'test_report.json'), encoding='utf-8').read())
    # the same rows, batched by length instead of the test loader's 8 rows of max_len: float rounding may
    # reorder a pair of close scores (Spearman moves by a rank), Pearson stays put
    assert saved['task'] == 'regression' and saved['rows'] == test_report['rows']
    assert saved['pearson'] == pytest.approx(test_report['pearson'], abs=1e-4)
    assert saved['spearman'] == pytest.approx(test_report['spearman'], abs=0.01)
    code, out, err = run_cli(capsys, 'evaluate', '--model', task_runs['multi'].run_dir, '--threshold', '0.9')
    assert code == 0, err
    assert 'micro-F1' in out and '(threshold 0.9)' in out


def test_cli_predict_reads_pairs_from_a_table_and_from_arguments(task_runs, task_data, capsys, tmp_path):
    model = os.path.join(task_runs['sts'].run_dir, 'best')
    classifier = TextClassifier.load(model)
    table = pair_rows(6, seed=9)
    table.to_csv(tmp_path / 'in.tsv', sep='\t', index=False)
    code, _, _ = run_cli(capsys, 'predict', '--model', model, '--input', tmp_path / 'in.tsv', '--output',
                         tmp_path / 'out.tsv')
    assert code == 0
    out = pd.read_csv(tmp_path / 'out.tsv', sep='\t')
    assert list(out.columns) == list(table.columns) + ['predicted_score']  # the table's own 'score' is kept
    expected = classifier.predict(list(zip(table['sentence1'], table['sentence2'])))
    np.testing.assert_allclose(out['predicted_score'], expected, rtol=1e-5)
    code, out, _ = run_cli(capsys, 'predict', '--model', model, table['sentence1'][0], '--text_pair',
                           table['sentence2'][0], '--format', 'jsonl')
    assert code == 0 and json.loads(out)['score'] == pytest.approx(expected[0], rel=1e-5)


def test_cli_predict_writes_the_labels_above_the_threshold(task_runs, capsys):
    model = os.path.join(task_runs['multi'].run_dir, 'best')
    classifier = TextClassifier.load(model)
    texts = ['오늘 비가 많이 김치찌개가 맛있어요', '']
    code, out, _ = run_cli(capsys, 'predict', '--model', model, '--threshold', '0.2', '--', *texts)
    assert code == 0
    header, first, blank = out.splitlines()
    names = classifier.label_map.names
    assert header.split('\t') == ['text', 'labels'] + [f'prob_{name}' for name in names]
    assert first.split('\t')[1] == ','.join(classifier.predict(texts[:1], threshold=0.2)[0])
    assert blank.split('\t')[1:] == [''] * (1 + len(names))


BAD_RUNS = {
    'missing pair column': ('sts', dict(text_pair_column='hypothesis'), r"no column 'hypothesis' \(--text_pair_column\)"),
    'label not a number': ('sts', dict(label_column='gold_label'),
                           "row 1, column 'gold_label': label 'different' is not a number"),
    'threshold out of range': ('multi', dict(threshold=1.5), 'threshold=1.5 must be a number between 0 and 1'),
    'pair column is the text column': ('sts', dict(text_pair_column='sentence1'), 'text_pair_column=.*another column'),
    'label_columns for classification': ('nli', dict(label_columns='a,b'), 'label_columns=.*is for --task multi_label'),
    'select metric of another task': ('sts', dict(select_metric='accuracy'), "--task regression is selected on one of"),
    'unknown label column': ('columns', dict(label_columns='날씨,기분'), "no column '기분' \\(--label_columns\\)"),
}


@pytest.mark.parametrize('case', sorted(BAD_RUNS))
def test_bad_settings_and_labels_are_one_line_errors(case, tmp_path, task_data, capsys):
    base, overrides, words = BAD_RUNS[case]
    settings = {**SETTINGS[base], **overrides}
    flags = [item for key, value in settings.items() for item in (f'--{key}', value)]
    source = task_data['multi'] if base in ('multi', 'columns') else task_data['pairs']
    code, _, err = run_cli(capsys, 'train', '--data', source, '--bert', 'small', '--num_epochs', 1,
                           '--output_dir', tmp_path / 'run', *flags)
    assert code == 2, err
    line, = [line for line in err.splitlines() if line.startswith('kobert-gluon: error: ')]
    import re
    assert re.search(words, line), line


def test_an_empty_second_text_names_the_row(tmp_path, capsys):
    table = pair_rows(40)
    table.loc[7, 'sentence2'] = '  '
    table.to_csv(tmp_path / 'holes.tsv', sep='\t', index=False)
    code, _, err = run_cli(capsys, 'train', '--data', tmp_path / 'holes.tsv', '--bert', 'small', '--output_dir',
                           tmp_path / 'run', *sum(([f'--{k}', v] for k, v in SETTINGS['nli'].items()), []))
    assert code == 2 and "row 8: column 'sentence2' is empty but the other text of the pair is not" in err


@pytest.mark.parametrize('name', ['nli', 'sts', 'multi'])
def test_the_mxnet_export_computes_the_models_outputs(task_runs, name, tmp_path):
    import mxnet as mx

    classifier = TextClassifier.load(os.path.join(task_runs[name].run_dir, 'best'))
    paths = export(classifier, tmp_path / 'export')
    manifest = json.loads(open(paths['manifest'], encoding='utf-8').read())
    assert (manifest['task'], manifest['pair']) == (classifier.task.name, classifier.pair)
    net = mx.gluon.SymbolBlock.imports(paths['symbol'], ['data0', 'data1', 'data2'], paths['params'])
    inputs = [('오늘 비가 많이', '축구를 했어요'), ('라면이 짜요', '떡볶이는 매워요 밥을 먹었어요')]
    inputs = inputs if classifier.pair else [a for a, _ in inputs]
    batch = next(classifier.batches(classifier.encode(inputs), 2))
    outputs = net(*(mx.nd.array(array, dtype='int32') for array in batch)).asnumpy()
    np.testing.assert_allclose(outputs, classifier.logits(inputs), atol=1e-5)
