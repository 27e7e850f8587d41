"""What a newcomer meets first: whole error lines, the missing-weights message, --version, a bare
command, unknown flags, run folders as --model, evaluate on the recorded test split and on
overlapping rows, predict on tables, and the int8 calibration help."""
import contextlib
import io
import json
import logging
import shutil
import types

import pandas as pd
import pytest

from kobert_gluon import cli
from kobert_gluon.cli import options, predict, tools
from kobert_gluon.errors import CheckpointError, last_line
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.inference.evaluate import check_overlap, recorded_rows, row_hashes
from kobert_gluon.text.data import demo_data_path
from kobert_gluon.training import rundir

from test_cli import assert_one_line_error, recorded_configs, run_cli  # noqa: F401  (a fixture)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """The demo trained through the command line once (1 epoch)."""
    directory = tmp_path_factory.mktemp('edges-run')
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(['train', '--output_dir', str(directory), '--num_epochs', '1', '--max-len', '32']) == 0
    return directory


@pytest.fixture(scope='module')
def classifier(run_dir):
    return TextClassifier.load(run_dir / 'best')


def demo_frame():
    return pd.read_csv(demo_data_path(), sep='\t', quoting=3, dtype=str)


def split_of(run_dir, name):
    positions = json.loads((run_dir / 'split.json').read_text(encoding='utf-8'))[name]['positions']
    return demo_frame().iloc[positions]


# ---------------------------------------------------------------------------- whole error lines

def test_last_line_keeps_a_long_message_whole():
    message = 'put it in /somewhere/kobert, or set KOBERT_HOME ' + 'x' * 600 + ' the end'
    assert last_line(ValueError(message)) == message
    assert last_line(ValueError('first\nsecond ' + 'y' * 600)) == 'first second ' + 'y' * 600


def test_last_line_still_drops_a_cpp_traceback():
    error = ValueError('Traceback (most recent call last):\n  [bt] (0) libmxnet.so\n'
                       'MXNetError: Check failed: ' + 'z' * 500)
    assert last_line(error) == 'MXNetError: Check failed: ' + 'z' * 500


def test_resume_refused_message_is_printed_whole(tmp_path, monkeypatch, capsys):
    (tmp_path / rundir.INPUTS_FILE).write_text(json.dumps({'recipe': {'seed': 42, 'max_len': 64},
                                                            'data': {'md5': 'a' * 32, 'bytes': 10}}))
    with pytest.raises(CheckpointError) as refused:
        rundir.check_inputs(str(tmp_path), {'recipe': {'seed': 7, 'max_len': 128}, 'data': {'md5': 'b' * 32,
                                                                                              'bytes': 11 ** 40}})
    message = str(refused.value)
    assert len(message) > 300

    def refuse(config):
        raise refused.value
    monkeypatch.setattr(cli.finetune, 'train', refuse)
    code, _, err = run_cli(capsys, 'train', '--output_dir', tmp_path, '--resume')
    assert_one_line_error(code, err)
    assert err.strip() == f'kobert-gluon: error: {message}'


def test_missing_kobert_weights_say_what_to_do(tmp_path, capsys):
    data = tmp_path / 'emotions.xlsx'
    frame = demo_frame().head(60).rename(columns={'text': 'Sentence', 'label': 'Emotion'})
    frame.to_excel(data, index=False)

    code, _, err = run_cli(capsys, 'train', '--data', data, '--text_column', 'Sentence', '--label_column',
                           'Emotion', '--output_dir', tmp_path / 'run')

    assert_one_line_error(code, err, '--kobert_dir', 'KOBERT_HOME', '--bert small', 'put it in',
                          'shipped in the package', 'no download')
    assert err.rstrip().endswith('.')  # whole, not cut mid-word


# ---------------------------------------------------------------------------- --version, bare command

def test_version(capsys):
    from kobert_gluon._version import __version__

    code, out, _ = run_cli(capsys, '--version')
    assert code == 0 and out.strip() == f'kobert-gluon {__version__}'


def test_bare_command_lists_the_commands(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and out == ''
    for name, _, _, summary in cli.COMMANDS:
        assert any(line.split() and line.split()[0] == name and summary in line for line in err.splitlines())
    assert 'COMMAND --help' in err


# ---------------------------------------------------------------------------- unknown flags

@pytest.mark.parametrize('argv, meant', [
    (['train', '--num_train_epochs', '3'], 'did you mean --num_epochs?'),
    (['train', '--per_device_train_batch_size=8'], 'did you mean --batch_size?'),
    (['train', '--train-batch-size', '8'], 'did you mean --batch_size?'),
    (['train', '--model_name_or_path', 'x'], 'did you mean --init_from?'),
    (['train', '--max_seq_length', '128'], 'did you mean --max_len?'),
    (['train', '--logging_steps', '10'], 'did you mean --log_interval?'),
    (['train', '--save_steps', '10'], 'did you mean --save_every?'),
    (['train', '--fp16'], 'did you mean --dtype float16?'),
    (['train', '--do_train'], 'not needed'),
    (['train', '--lerning_rate', '1e-4'], 'did you mean --learning_rate?'),
    (['predict', '--modle', 'm', '좋아요'], 'did you mean --model?'),
    (['evaluate', '--model', 'm', '--dta', 'x.tsv'], 'did you mean --data?'),
    (['evaluate', '--model', 'm', '--max_seq_length', '9'], "'kobert-gluon evaluate --help' lists its flags"),
])
def test_unknown_flag_is_one_line_with_what_was_meant(capsys, argv, meant):
    flag = next(arg for arg in argv[1:] if arg.startswith('--') and arg != '--model').split('=')[0]
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, f'{argv[0]}: unknown flag {flag};', meant)
    assert 'usage:' not in err and out == ''


def test_an_abbreviation_of_one_flag_is_that_flag(recorded_configs, capsys):
    code, _, err = run_cli(capsys, 'train', '--num-ep', 3, '--max_l', 40)  # --max_len and --max-len: one flag
    assert code == 0, err
    assert (recorded_configs[0].num_epochs, recorded_configs[0].max_len) == (3, 40)
    code, _, err = run_cli(capsys, 'train', '--num', 3)
    assert_one_line_error(code, err, 'ambiguous flag --num: --num_classes or --num_epochs?')


def test_flags_after_double_dash_are_sentences(run_dir, capsys):
    code, out, _ = run_cli(capsys, 'predict', '--model', run_dir / 'best', '--', '--not-a-flag 좋아요')
    assert code == 0 and '--not-a-flag 좋아요' in out


# ---------------------------------------------------------------------------- --model RUN

@pytest.mark.parametrize('command', ['predict', 'export'])
def test_a_run_folder_stands_for_its_best_model(run_dir, tmp_path, capsys, command):
    extra = ['좋아요'] if command == 'predict' else ['--output', tmp_path / 'export']
    code, out, err = run_cli(capsys, command, '--model', run_dir, *extra)
    assert code == 0, err
    assert f'{run_dir} is a run folder' in err and str(run_dir / 'best') in err


def test_model_directory_keeps_a_model_directory(run_dir):
    assert options.model_directory(str(run_dir / 'best')) == str(run_dir / 'best')
    assert options.model_directory(str(run_dir)) == str(run_dir / 'best')


# ---------------------------------------------------------------------------- evaluate without --data

def test_evaluate_without_data_scores_the_recorded_test_split(run_dir, tmp_path, capsys):
    report_path = tmp_path / 'report.json'
    code, out, err = run_cli(capsys, 'evaluate', '--model', run_dir / 'best', '--output', report_path)

    assert code == 0, err
    report = json.loads(report_path.read_text(encoding='utf-8'))
    recorded = json.loads((run_dir / 'test_report.json').read_text(encoding='utf-8'))
    assert report['sentences'] == recorded['test_rows'] == len(split_of(run_dir, 'test'))
    assert report['accuracy'] == pytest.approx(recorded['accuracy'])
    assert report['overlap_rows'] == 0
    assert 'is the test split recorded with this model' in err


def copied_run(run_dir, tmp_path, data=None, **settings):
    """A copy of the run whose train_config.json names ``data`` (and ``settings``)."""
    copy = tmp_path / 'run'
    shutil.copytree(run_dir / 'best', copy / 'best')
    for name in ('split.json', 'train_config.json'):
        shutil.copy(run_dir / name, copy / name)
    config = json.loads((copy / 'train_config.json').read_text(encoding='utf-8'))
    config.update(data=str(data) if data else None, **settings)
    (copy / 'train_config.json').write_text(json.dumps(config), encoding='utf-8')
    return copy


def test_evaluate_without_data_refuses_a_changed_data_file(run_dir, tmp_path, capsys):
    frame = demo_frame()
    test_row = split_of(run_dir, 'test').index[0]
    frame.loc[test_row, 'text'] = frame.loc[test_row, 'text'] + ' (edited)'
    data = tmp_path / 'mine.tsv'
    frame.to_csv(data, sep='\t', index=False)
    copy = copied_run(run_dir, tmp_path, data)

    code, _, err = run_cli(capsys, 'evaluate', '--model', copy)

    assert_one_line_error(code, err, str(data), 'changed since the run', 'sha256', '--data')


def test_evaluate_without_data_uses_a_separate_test_file_as_is(run_dir, tmp_path, capsys):
    test_file = tmp_path / 'test.tsv'
    split_of(run_dir, 'test').head(20).to_csv(test_file, sep='\t', index=False)
    copy = copied_run(run_dir, tmp_path, test_data=str(test_file))
    split = json.loads((copy / 'split.json').read_text(encoding='utf-8'))
    split['test']['positions'] = None
    (copy / 'split.json').write_text(json.dumps(split), encoding='utf-8')
    report_path = tmp_path / 'report.json'

    code, _, err = run_cli(capsys, 'evaluate', '--model', copy, '--output', report_path)

    assert code == 0, err
    report = json.loads(report_path.read_text(encoding='utf-8'))
    assert report['sentences'] == 20 and report['data'] == str(test_file)


def test_evaluate_without_data_outside_a_run_is_one_line(run_dir, tmp_path, capsys):
    shutil.copytree(run_dir / 'best', tmp_path / 'alone')
    code, _, err = run_cli(capsys, 'evaluate', '--model', tmp_path / 'alone')
    assert_one_line_error(code, err, 'no --data', '--data FILE')


# ---------------------------------------------------------------------------- overlap

def test_evaluate_refuses_data_mostly_seen_in_training(run_dir, capsys):
    code, _, err = run_cli(capsys, 'evaluate', '--model', run_dir / 'best', '--data', demo_data_path())
    seen = len(split_of(run_dir, 'train')) + len(split_of(run_dir, 'valid'))
    assert_one_line_error(code, err, f'{seen} of 600 rows ({seen / 600:.1%})', '--allow_overlap')


def test_allow_overlap_warns_with_the_count(run_dir, tmp_path, capsys, caplog):
    data = tmp_path / 'mixed.tsv'
    pd.concat([split_of(run_dir, 'test'), split_of(run_dir, 'train').head(5)]).to_csv(data, sep='\t', index=False)

    with caplog.at_level(logging.WARNING, logger='kobert_gluon'):
        code, _, err = run_cli(capsys, 'evaluate', '--model', run_dir / 'best', '--data', data)  # 5 of 125: < 10%
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('5 of 125 rows (4.0%)' in message for message in warnings)

    code, _, err = run_cli(capsys, 'evaluate', '--model', run_dir / 'best', '--data', demo_data_path(),
                           '--allow_overlap')
    assert code == 0 and 'of 600 rows' in err


def test_overlap_from_the_rows_a_model_recorded():
    texts, labels = ['좋아요', '싫어요', '그냥 그래요'], ['긍정', '부정', '부정']
    model = types.SimpleNamespace(training={'split': {'train': {'row_sha256': row_hashes(texts[:1], labels[:1])},
                                                      'valid': {'row_sha256': row_hashes(texts[1:2], labels[1:2])}}})
    seen = recorded_rows(model)
    assert check_overlap(texts, labels, seen, allow=True) == 2
    with pytest.raises(Exception, match=r'2 of 3 rows \(66.7%\)'):
        check_overlap(texts, labels, seen)
    assert check_overlap(texts, ['부정', '긍정', '부정'], seen) == 0  # same texts, other labels
    assert recorded_rows(types.SimpleNamespace(training={'split': {'train': {'sha256': 'x'}}})) is None


# ---------------------------------------------------------------------------- predict on a table

TABLE = pd.DataFrame({'id': ['1', '2', '3'], 'review': ['배송이 빨라서 좋았어요', '', '다시는, 안 "삽니다"'],
                      'stars': ['5', '3', '1']})


@pytest.mark.parametrize('suffix', ['.csv', '.tsv'])
def test_predict_table_keeps_its_columns_in_its_format(run_dir, classifier, tmp_path, capsys, suffix):
    source = tmp_path / f'reviews{suffix}'
    TABLE.to_csv(source, sep='\t' if suffix == '.tsv' else ',', index=False)

    code, out, err = run_cli(capsys, 'predict', '--model', run_dir, '--input', source, '--text_column', 'review')

    assert code == 0, err
    result = pd.read_csv(io.StringIO(out), sep='\t' if suffix == '.tsv' else ',', dtype=str, keep_default_na=False)
    names = classifier.label_map.names
    assert list(result.columns) == ['id', 'review', 'stars', 'label'] + [f'prob_{n}' for n in names]
    assert list(result['id']) == ['1', '2', '3'] and list(result['stars']) == ['5', '3', '1']
    assert result.loc[1, 'label'] == '' and all(result.loc[1, f'prob_{n}'] == '' for n in names)
    expected = classifier.predict([TABLE['review'][0], TABLE['review'][2]])
    assert [result.loc[0, 'label'], result.loc[2, 'label']] == expected


def test_predict_xlsx_writes_xlsx_and_output_suffix_chooses(run_dir, classifier, tmp_path, capsys):
    source = tmp_path / 'reviews.xlsx'
    TABLE.to_excel(source, index=False)
    for target in (tmp_path / 'out.xlsx', tmp_path / 'out.jsonl'):
        code, _, err = run_cli(capsys, 'predict', '--model', run_dir, '--input', source, '--text_column', 'review',
                               '--output', target)
        assert code == 0, err
    result = pd.read_excel(tmp_path / 'out.xlsx', dtype=object)
    assert list(result.columns)[:4] == ['id', 'review', 'stars', 'label'] and len(result) == 3
    assert pd.isna(result.loc[1, 'label'])
    records = [json.loads(line) for line in (tmp_path / 'out.jsonl').read_text(encoding='utf-8').splitlines()]
    assert [r['label'] for r in records] == [result.loc[0, 'label'], None, result.loc[2, 'label']]
    assert records[0]['label'] == classifier.predict([TABLE['review'][0]])[0]


def test_predict_table_without_the_column_names_the_columns(run_dir, tmp_path, capsys):
    source = tmp_path / 'reviews.csv'
    TABLE.to_csv(source, index=False)
    code, _, err = run_cli(capsys, 'predict', '--model', run_dir, '--input', source)
    assert_one_line_error(code, err, "no column 'text'", "'review'", '--text_column')


def test_predict_txt_stays_one_sentence_per_line(run_dir, tmp_path, capsys):
    source = tmp_path / 'sentences.txt'
    source.write_text('좋아요\ttab\n', encoding='utf-8')
    code, out, _ = run_cli(capsys, 'predict', '--model', run_dir, '--input', source)
    assert code == 0 and out.splitlines()[1].startswith('좋아요 tab\t')


# ---------------------------------------------------------------------------- int8 calibration texts

def test_calibration_help_is_one_story():
    import argparse

    parsers = {}
    for name, add in (('predict', predict.add_predict_arguments), ('serve', tools.add_serve_arguments)):
        parsers[name] = argparse.ArgumentParser()
        add(parsers[name])
    help_text = next(a.help for a in parsers['predict']._actions if '--calibration' in a.option_strings)
    assert 'predict and evaluate calibrate on the first 512 sentences they score' in help_text
    assert 'serve on the first 512 sentences of the embedded demo set' in help_text
    assert 'first 512 sentences of the embedded demo set' in parsers['serve'].epilog


def test_calibration_skips_empty_inputs():
    seen = []
    model = types.SimpleNamespace(with_precision=lambda dtype, texts: seen.append(texts) or 'int8 model')
    args = types.SimpleNamespace(dtype='int8', calibration=None)
    assert options.in_precision(model, args, ['', '좋아요', '  ', '싫어요']) == 'int8 model'
    assert seen == [['좋아요', '싫어요']]
