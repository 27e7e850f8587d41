"""The kobert-gluon command: train, predict, evaluate, export, --help, and one-line errors."""
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from kobert_gluon.text.data import demo_data_path
from kobert_gluon import cli
from kobert_gluon.errors import KobertGluonError
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.training.config import SIZE_DEFAULTS, TrainConfig
from hangguard import hang_guard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENTENCES = ['배송이 빨라서 좋았어요', '', '   ', '다시는 안 삽니다 😡', '漢字 섞인 文章', 'KoBERT 2.0 최고 100점',
             '정말 최고의 영화였습니다 ' * 300]
INFERENCE_FLAGS = [('--model', None), ('--ctx', 'auto'), ('--batch-size', 64), ('--batch_size', 64)]
FLAGS = {
    'evaluate': INFERENCE_FLAGS + [('--data', None), ('--text-column', "the run's own, else 'text'"),
                                   ('--label-column', "the run's own, else 'label'"), ('--text_column', None),
                                   ('--label_column', None), ('--text_pair_column', "the run's own"),
                                   ('--threshold', None), ('--output', None)],
    'predict': INFERENCE_FLAGS + [('--input', None), ('--format', 'tsv'), ('--output', None)],
    'export': [('--model', None), ('--output', None), ('--name', 'model'), ('--ctx', 'cpu')],
}


@pytest.fixture(scope='module')
def cli_run(tmp_path_factory):
    """The demo trained through the command line once; its stdout and run directory."""
    run_dir = tmp_path_factory.mktemp('cli-run')
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(['train', '--output_dir', str(run_dir), '--num_epochs', '1', '--max-len', '32'])
    assert code == 0
    return types.SimpleNamespace(run_dir=run_dir, model_dir=run_dir / 'best', stdout=stdout.getvalue())


@pytest.fixture(scope='module')
def cli_classifier(cli_run):
    return TextClassifier.load(cli_run.model_dir)


def run_cli(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    assert 'Traceback' not in err
    errors = [line for line in err.splitlines() if line.startswith('kobert-gluon: error: ')]
    assert len(errors) == 1, err
    assert err.rstrip('\n').endswith(errors[0])
    for word in words:
        assert word in errors[0]


def text_stdin(text):
    """A stand-in for sys.stdin: text on top of the bytes the command reads."""
    return io.TextIOWrapper(io.BytesIO(text.encode('utf-8')), encoding='utf-8')


def assert_predictions(labels, probabilities, classifier, texts, blank_label):
    """Sentences get the classifier's own predictions; blank lines keep their row, unpredicted."""
    blank = [not text.strip() for text in texts]
    scored = [text for text, is_blank in zip(texts, blank) if not is_blank]
    assert [label for label, is_blank in zip(labels, blank) if is_blank] == [blank_label] * sum(blank)
    assert all(p is None or p == [] for p, is_blank in zip(probabilities, blank) if is_blank)
    labels = [label for label, is_blank in zip(labels, blank) if not is_blank]
    probabilities = [p for p, is_blank in zip(probabilities, blank) if not is_blank]
    assert labels == classifier.predict(scored)
    np.testing.assert_allclose(probabilities, classifier.predict_proba(scored), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-5)


def read_tsv(text):
    header, *rows = [line.split('\t') for line in text.splitlines()]
    return header, rows


# ---------------------------------------------------------------------------- train

def test_train_demo_overrides_only_the_flags_given(cli_run):
    config = json.loads((cli_run.run_dir / 'train_config.json').read_text(encoding='utf-8'))
    demo = TrainConfig.demo()

    assert (config['num_epochs'], config['max_len']) == (1, 32)
    assert (config['bert'], config['batch_size'], config['learning_rate']) == (demo.bert, demo.batch_size,
                                                                               demo.learning_rate)
    assert cli_run.stdout.strip() == str(cli_run.model_dir)
    assert (cli_run.model_dir / 'model.params').is_file()


@pytest.fixture
def recorded_configs(monkeypatch):
    """Replace training by recording the TrainConfig the command built."""
    configs = []

    def record(config):
        configs.append(config)
        return types.SimpleNamespace(run_dir=config.output_dir or 'runs/recorded')
    monkeypatch.setattr(cli.finetune, 'train', record)
    return configs


def test_config_file_then_flags_then_demo_preset(recorded_configs, tmp_path, capsys):
    settings = tmp_path / 'settings.json'
    settings.write_text(json.dumps({'num_epochs': 3, 'max_len': 40, 'seed': 7, 'bucketing': True}))

    code, _, _ = run_cli(capsys, 'train', '--config', settings, '--max_len', 50, '--no-bucketing',
                         '--learning-rate', '1e-4')

    assert code == 0
    config, = recorded_configs
    assert (config.num_epochs, config.max_len, config.seed, config.bucketing) == (3, 50, 7, False)
    assert config.learning_rate == 1e-4
    assert (config.bert, config.batch_size) == ('small', 32)  # the demo preset, not the dataclass defaults


def test_with_data_the_kobert_size_defaults_apply(recorded_configs, tmp_path, capsys):
    code, _, _ = run_cli(capsys, 'train', '--data', tmp_path / 'mine.tsv', '--num-epochs', 2, '--bucketing')

    assert code == 0
    config, = recorded_configs
    defaults = TrainConfig(data=str(tmp_path / 'mine.tsv')).resolved()  # what the Python API runs
    assert (config.data, config.num_epochs, config.bucketing) == (str(tmp_path / 'mine.tsv'), 2, True)
    assert (config.bert, config.batch_size, config.learning_rate, config.output_dir) == \
        ('kobert', 64, 5e-5, None) == (defaults.bert, defaults.batch_size, defaults.learning_rate, defaults.output_dir)


@pytest.mark.parametrize('content, words', [
    ('{"max_len": 64, "epochs": 3}', ['unknown settings', "'epochs'"]),
    ('{"max_len": "64"}', ['max_len', 'int']),
    ('{"bucketing": 1}', ['bucketing', 'bool']),
    ('{"num_epochs": ', ['not valid JSON']),
    ('[1, 2]', ['JSON object']),
])
def test_bad_config_file_is_one_line_naming_it(recorded_configs, tmp_path, capsys, content, words):
    settings = tmp_path / 'settings.json'
    settings.write_text(content)
    code, _, err = run_cli(capsys, 'train', '--config', settings)
    assert_one_line_error(code, err, str(settings), *words)
    assert recorded_configs == []


def test_invalid_settings_are_one_line_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, 'train', '--max_len', 1000, '--output_dir', tmp_path)
    assert_one_line_error(code, err, 'max_len=1000')


@pytest.mark.parametrize('argv', [[], ['train', '--max_len', 'abc'], ['train', '--bert', 'huge'], ['predict'],
                                  ['predict', '--model', 'm', '--batch-size', '0'], ['predict', '--format', 'xml']])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert 'usage: kobert-gluon' in err and 'Traceback' not in err


# ---------------------------------------------------------------------------- predict

def test_predict_tsv_from_stdin(cli_run, cli_classifier, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'stdin', text_stdin(''.join(text + '\n' for text in SENTENCES)))

    code, out, err = run_cli(capsys, 'predict', '--model', cli_run.model_dir)

    assert code == 0
    header, rows = read_tsv(out)
    names = cli_classifier.label_map.names
    assert header == ['text', 'label'] + [f'prob_{name}' for name in names]
    assert [row[0] for row in rows] == SENTENCES
    assert_predictions([row[1] for row in rows], [[float(p) for p in row[2:] if p] for row in rows],
                       cli_classifier, SENTENCES, blank_label='')
    assert '2 of 7 texts are empty or whitespace only' in err


def test_predict_jsonl_from_input_file_to_output_file(cli_run, cli_classifier, tmp_path, capsys):
    source = tmp_path / 'sentences.txt'
    source.write_text('\r\n'.join(SENTENCES) + '\r\n', encoding='utf-8')  # Windows line ends too
    target = tmp_path / 'out' / 'predictions.jsonl'

    code, out, _ = run_cli(capsys, 'predict', '--model', cli_run.model_dir, '--input', source,
                           '--format', 'jsonl', '--output', target)

    assert code == 0 and out == ''
    records = [json.loads(line) for line in target.read_text(encoding='utf-8').splitlines()]
    names = cli_classifier.label_map.names
    assert [record['text'] for record in records] == SENTENCES
    assert all(list(record['probabilities']) == names for record in records if record['text'].strip())
    assert_predictions([record['label'] for record in records],
                       [record['probabilities'] and list(record['probabilities'].values()) for record in records],
                       cli_classifier, SENTENCES, blank_label=None)


def test_predict_positional_sentences_and_tabs_stay_in_their_column(cli_run, cli_classifier, capsys):
    texts = ['좋아요\t정말로', '-_- 별로']
    code, out, _ = run_cli(capsys, 'predict', '--model', cli_run.model_dir, '--', *texts)

    assert code == 0
    header, rows = read_tsv(out)
    assert [len(row) for row in rows] == [len(header)] * 2
    assert [row[0] for row in rows] == ['좋아요 정말로', '-_- 별로']
    assert [row[1] for row in rows] == cli_classifier.predict(texts)


def test_predict_with_no_input_writes_only_the_header(cli_run, cli_classifier, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'stdin', text_stdin(''))
    code, out, _ = run_cli(capsys, 'predict', '--model', cli_run.model_dir)
    assert code == 0
    assert out.splitlines() == ['\t'.join(['text', 'label'] + [f'prob_{n}' for n in cli_classifier.label_map.names])]


def test_console_entry_point_reads_utf8_stdin(cli_run, cli_classifier, tmp_path):
    env = {**os.environ, 'PYTHONPATH': REPO, 'LC_ALL': 'C', 'LANG': 'C'}
    result = subprocess.run([sys.executable, '-m', 'kobert_gluon.cli', 'predict', '--model', str(cli_run.model_dir),
                             '--format', 'jsonl'], input='\n'.join(SENTENCES).encode('utf-8'),
                            capture_output=True, env=env, cwd=tmp_path, timeout=hang_guard(60))

    assert result.returncode == 0, result.stderr.decode('utf-8', 'replace')
    records = [json.loads(line) for line in result.stdout.decode('utf-8').splitlines()]
    assert [record['text'] for record in records] == SENTENCES
    assert [record['label'] for record in records] == [
        label if text.strip() else None for text, label in zip(SENTENCES, cli_classifier.predict(SENTENCES))]


# ---------------------------------------------------------------------------- evaluate

def labeled_sample(rows=60):
    demo = demo_data_path()
    frame = pd.read_csv(demo, sep='\t', quoting=3, dtype=str).sample(rows, random_state=0)
    return list(frame['text']), list(frame['label'])


def test_evaluate_accuracy_matches_predict(cli_run, cli_classifier, tmp_path, capsys):
    texts, labels = labeled_sample()
    data = tmp_path / 'labeled.tsv'
    pd.DataFrame({'sentence': texts, 'sentiment': labels}).to_csv(data, sep='\t', index=False)
    report_path = tmp_path / 'report.json'

    # A sample of the demo set the model was trained on: --allow_overlap (see test_cli_edges.py).
    code, out, _ = run_cli(capsys, 'evaluate', '--model', cli_run.model_dir, '--data', data, '--allow_overlap',
                           '--text-column', 'sentence', '--label-column', 'sentiment', '--output', report_path)

    assert code == 0
    report = json.loads(report_path.read_text(encoding='utf-8'))
    expected_accuracy = np.mean(np.array(cli_classifier.predict(texts)) == np.array(labels))
    assert report['accuracy'] == pytest.approx(expected_accuracy)
    assert report['sentences'] == len(texts) == np.sum(report['confusion_matrix'])
    assert report['labels'] == cli_classifier.label_map.names
    assert f"accuracy {report['accuracy']:.4f}" in out and 'confusion matrix' in out


def test_evaluate_unknown_label_is_named(cli_run, tmp_path, capsys):
    data = tmp_path / 'labeled.tsv'
    data.write_text('text\tlabel\n좋아요\t긍정\n그저 그래요\t중립\n', encoding='utf-8')
    code, _, err = run_cli(capsys, 'evaluate', '--model', cli_run.model_dir, '--data', data)
    assert_one_line_error(code, err, "unknown label '중립'", str(data))


def test_evaluate_missing_column_and_file_are_named(cli_run, tmp_path, capsys):
    data = tmp_path / 'labeled.tsv'
    data.write_text('text\tlabel\n좋아요\t긍정\n', encoding='utf-8')
    code, _, err = run_cli(capsys, 'evaluate', '--model', cli_run.model_dir, '--data', data, '--label-column', 'y')
    assert_one_line_error(code, err, "no column 'y'")
    code, _, err = run_cli(capsys, 'evaluate', '--model', cli_run.model_dir, '--data', tmp_path / 'absent.tsv')
    assert_one_line_error(code, err, 'absent.tsv')


# ---------------------------------------------------------------------------- export

def test_export_command_writes_a_loadable_export(cli_run, tmp_path, capsys):
    code, out, _ = run_cli(capsys, 'export', '--model', cli_run.model_dir, '--output', tmp_path / 'served')

    assert code == 0
    paths = dict(line.split('\t') for line in out.splitlines())
    for role in ('symbol', 'params', 'manifest', 'tokenizer'):
        assert os.path.isfile(paths[role])

    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep')
    code, _, err = run_cli(capsys, 'export', '--model', cli_run.model_dir, '--output', tmp_path / 'mine')
    assert_one_line_error(code, err, 'refusing to replace')


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize('command', ['predict', 'evaluate', 'export'])
def test_damaged_model_directory_is_a_one_line_error(broken_model_dir, tmp_path, capsys, command):
    model_dir, words = broken_model_dir
    extra = {'predict': ['좋아요'], 'evaluate': ['--data', tmp_path / 'unused.tsv'],
             'export': ['--output', tmp_path / 'export']}[command]

    code, out, err = run_cli(capsys, command, '--model', model_dir, *extra)

    assert_one_line_error(code, err, str(model_dir), *words)
    assert out == ''


@pytest.mark.parametrize('ctx, words', [('gpu:99', ['--ctx gpu:99']), ('tpu', ["expected 'auto'"])])
def test_unusable_ctx_is_a_one_line_error(cli_run, capsys, ctx, words):
    code, _, err = run_cli(capsys, 'predict', '--model', cli_run.model_dir, '--ctx', ctx, '좋아요')
    assert_one_line_error(code, err, *words)


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(KobertGluonError, match='does not exist'):
        cli.main(['--debug', 'predict', '--model', str(tmp_path / 'nowhere'), '좋아요'])


# ---------------------------------------------------------------------------- help

@pytest.fixture
def wide_help(monkeypatch):
    monkeypatch.setenv('COLUMNS', '400')  # no wrapping inside a default value


def test_train_help_lists_every_config_field_with_its_default(wide_help, capsys):
    code, out, _ = run_cli(capsys, 'train', '--help')

    assert code == 0
    for field in dataclasses.fields(TrainConfig):
        assert f'--{field.name}' in out
        assert f'--{field.name.replace("_", "-")}' in out
        if field.name in SIZE_DEFAULTS['small']:  # each --bert size has its own default
            assert (f"default per --bert size, small: {SIZE_DEFAULTS['small'][field.name]}; "
                    f"kobert: {SIZE_DEFAULTS['kobert'][field.name]}") in out
        else:
            assert f'default: {field.default}' in out
    assert '--no-bucketing' in out and '--config' in out


@pytest.mark.parametrize('command', sorted(FLAGS))
def test_help_lists_every_flag_with_its_default(wide_help, capsys, command):
    code, out, _ = run_cli(capsys, command, '--help')

    assert code == 0
    for flag, default in FLAGS[command]:
        assert flag in out
        if default is not None:
            assert f'default: {default}' in out
    assert '(required)' in out and '--debug' in out


def test_install_script_refuses_an_unsupported_python_in_one_line(tmp_path):
    """numpy 1.23.5 (mxnet 1.9.1's) has no wheels past Python 3.11: said first, before any venv is made."""
    fake = tmp_path / 'python3.12'
    fake.write_text('#!/bin/sh\n[ "$1" = "-V" ] && { echo "Python 3.12.1"; exit 0; }\nexit 1\n')
    fake.chmod(0o755)
    venv = tmp_path / 'venv'
    result = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'install.sh')], capture_output=True, text=True,
                            env={**os.environ, 'PYTHON': str(fake), 'VENV': str(venv)}, timeout=hang_guard(30))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Python 3.12.1 is not supported' in lines[0] and '3.8-3.11' in lines[0]
    assert not venv.exists()
