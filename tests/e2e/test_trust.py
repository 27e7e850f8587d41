"""Every path off the happy one: each class of mistake or fault gives one clear error (API: the
library's error class; CLI: exit 2 and one line), never a silently wrong model or lost run."""
import io
import json
import os
import pickle
import shutil
import sys

import mxnet as mx
import numpy as np
import openpyxl
import pandas as pd
import pytest

import kobert_gluon
from kobert_gluon import cli, fileio
from kobert_gluon.training import checkpoint, rundir
from kobert_gluon.training import finetune as train_module
from kobert_gluon.inference import evaluate as evaluate_module
from kobert_gluon.text.data import BERTDataset, read_table
from kobert_gluon.errors import CheckpointError, ConfigError, DataError, DeviceError, ModelDirectoryError
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.training.finetune import train

from helpers import assert_same_params, cli_error, demo_frame, final_params, run_config, write_small_data



def killed_after(monkeypatch, name, calls):
    """Make ``training.<name>`` raise KeyboardInterrupt on its ``calls``-th call (a kill)."""
    original = getattr(train_module, name)
    seen = []

    def wrapper(*args, **kwargs):
        seen.append(1)
        result = original(*args, **kwargs)
        if len(seen) == calls:
            raise KeyboardInterrupt(f'killed after {name} #{calls}')
        return result
    monkeypatch.setattr(train_module, name, wrapper)


def kill_run(config, name, calls):
    """Train until ``training.<name>`` has run ``calls`` times, then die there."""
    with pytest.MonkeyPatch.context() as patch:
        killed_after(patch, name, calls)
        with pytest.raises(KeyboardInterrupt):
            train(config)


def file_hashes(directory):
    from kobert_gluon.assets import md5sum
    return {os.path.relpath(os.path.join(root, name), directory): md5sum(os.path.join(root, name))
            for root, _, names in os.walk(directory) for name in names if name != rundir.LOCK_FILE}


# ---------------------------------------------------------------------------- 1. no pickle

class Boom:
    """Unpickling this runs a command: the attack on trainer.states."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_checkpoints_hold_no_pickle_and_a_crafted_pickle_never_runs(tmp_path, small_data, tiny, monkeypatch, capsys):
    kill_run(run_config(tmp_path, small_data, 'run', num_epochs=2), 'write_plots', 1)
    last = tmp_path / 'run' / 'last'
    assert {'optimizer.json', 'optimizer.params', 'state.json'} <= set(os.listdir(last))
    assert not (last / 'trainer.states').exists()

    marker = tmp_path / 'pwned'
    for name in ('optimizer.json', 'optimizer.params'):
        (last / name).unlink()
    (last / 'trainer.states').write_bytes(pickle.dumps(Boom(marker)))
    (last / 'state.json').write_text(json.dumps({**json.loads((last / 'state.json').read_text()),
                                                'files': checkpoint.checkpoint_files(last)}))
    with pytest.raises(CheckpointError, match='pickled optimizer state.*--allow_pickle_resume'):
        train(run_config(tmp_path, small_data, 'run', num_epochs=2, resume=True))
    line = cli_error(capsys, 'train', '--output_dir', tmp_path / 'run', '--resume')
    assert 'trainer.states' in line and 'arbitrary code' in line
    assert not marker.exists()


# ---------------------------------------------------------------------------- 2. paths in config.json

@pytest.mark.parametrize('name', ['/etc/hostname', '../../outside.spiece', 'sub/../../x', 'link.spiece'])
def test_model_directory_files_must_stay_inside_it(demo_model_dir, tmp_path, capsys, name):
    model_dir = tmp_path / 'model'
    shutil.copytree(demo_model_dir, model_dir)
    outside = tmp_path / 'outside.spiece'
    shutil.copyfile(next((model_dir / 'tokenizer').iterdir()), outside)
    (model_dir / 'tokenizer' / 'link.spiece').symlink_to(outside)
    config = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
    config['tokenizer']['tokenizer']['file'] = name
    (model_dir / 'config.json').write_text(json.dumps(config), encoding='utf-8')

    with pytest.raises(ModelDirectoryError, match='refusing to read outside the model directory'):
        TextClassifier.load(model_dir)
    line = cli_error(capsys, 'export', '--model', model_dir, '--output', tmp_path / 'export')
    assert 'outside the model directory' in line
    assert not (tmp_path / 'export').exists()


# ---------------------------------------------------------------------------- 4, 5. run directories

def test_a_second_run_never_touches_the_first_runs_files(tmp_path, small_data, tiny, capsys):
    train(run_config(tmp_path, small_data, 'run'))
    before = file_hashes(tmp_path / 'run')
    with pytest.raises(CheckpointError, match='already holds a run.*--resume.*--overwrite'):
        train(run_config(tmp_path, small_data, 'run', seed=7))
    line = cli_error(capsys, 'train', '--data', small_data, '--bert', 'small', '--output_dir', tmp_path / 'run')
    assert 'already holds a run' in line
    assert file_hashes(tmp_path / 'run') == before

    replaced = train(run_config(tmp_path, small_data, 'run', seed=7, overwrite=True))
    assert replaced.run_dir == str(tmp_path / 'run')
    assert file_hashes(tmp_path / 'run') != before


def test_default_output_directories_are_unique(tmp_path, small_data, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = train(run_config(tmp_path, small_data, 'unused', output_dir=None))
    second = train(run_config(tmp_path, small_data, 'unused', output_dir=None))
    assert first.run_dir != second.run_dir
    assert os.path.dirname(first.run_dir) == 'runs' and os.path.basename(first.run_dir).startswith('small-')
    assert os.path.isfile(os.path.join(first.run_dir, 'best', 'model.params'))


def test_a_concurrent_run_fails_at_once_naming_the_holder(tmp_path, small_data, tiny, capsys):
    with rundir.locked(str(tmp_path / 'busy')):
        with pytest.raises(CheckpointError, match=f'in use by another training \\(pid {os.getpid()}'):
            train(run_config(tmp_path, small_data, 'busy'))
        assert 'in use by another training' in cli_error(capsys, 'train', '--output_dir', tmp_path / 'busy')
    assert not (tmp_path / 'busy' / 'best').exists()


# ---------------------------------------------------------------------------- 6, 7, 8. resume

def test_kill_in_the_rename_window_resumes_from_the_newest_complete_checkpoint(tmp_path, small_data, tiny,
                                                                               monkeypatch):
    train(run_config(tmp_path, small_data, 'straight', num_epochs=3))

    original_replace = os.replace
    renames = []

    def crash_between_renames(source, target):
        original_replace(source, target)
        if str(target).endswith(os.path.join('last.old')):
            renames.append(target)
            if len(renames) == 2:  # the epoch-2 checkpoint: last -> last.old done, tmp -> last not
                raise KeyboardInterrupt('killed between the two renames')
    with monkeypatch.context() as patch:
        patch.setattr(fileio.os, 'replace', crash_between_renames)
        with pytest.raises(KeyboardInterrupt):
            train(run_config(tmp_path, small_data, 'killed', num_epochs=3))
    run = tmp_path / 'killed'
    assert not (run / 'last').exists() and (run / 'last.old').is_dir()

    resumed = train(run_config(tmp_path, small_data, 'killed', num_epochs=3, resume=True))
    assert [e['epoch'] for e in resumed.history['epochs']] == [1, 2, 3]
    assert_same_params(final_params(tmp_path / 'straight'), final_params(run), atol=0)
    assert not [name for name in os.listdir(run) if name.startswith('.last.') or name.endswith('.old')]


def test_mid_epoch_resume_equals_an_uninterrupted_run(tmp_path, small_data, tiny, monkeypatch):
    settings = dict(num_epochs=2, save_every=2, batch_size=8)
    train(run_config(tmp_path, small_data, 'straight', **settings))
    # mid-epoch 1, after optimizer step 4 (the epoch has 9 batches of 8)
    kill_run(run_config(tmp_path, small_data, 'killed', **settings), 'save_checkpoint', 2)
    state = json.loads((tmp_path / 'killed' / 'last' / 'state.json').read_text())
    assert (state['epoch'], state['batches_done'], state['step']) == (0, 4, 4)

    resumed = train(run_config(tmp_path, small_data, 'killed', **settings, resume=True))
    assert_same_params(final_params(tmp_path / 'straight'), final_params(tmp_path / 'killed'), atol=0)
    straight = json.loads((tmp_path / 'straight' / 'last' / 'state.json').read_text())
    assert [e['train_loss'] for e in resumed.history['epochs']] == \
        [e['train_loss'] for e in straight['history']['epochs']]


def test_resume_needs_no_flags_and_config_is_written_first(tmp_path, small_data, tiny, monkeypatch, capsys):
    train(run_config(tmp_path, small_data, 'straight', num_epochs=2, seed=5))
    kill_run(run_config(tmp_path, small_data, 'early', num_epochs=2, seed=5), 'load_or_train_tokenizer', 1)
    recorded = json.loads((tmp_path / 'early' / 'train_config.json').read_text())
    assert recorded['seed'] == 5 and recorded['num_epochs'] == 2  # recorded before any work

    kill_run(run_config(tmp_path, small_data, 'late', num_epochs=2, seed=5), 'write_plots', 1)
    assert json.loads((tmp_path / 'late' / 'last' / 'train_config.json').read_text()) == \
        json.loads((tmp_path / 'late' / 'train_config.json').read_text())

    for run in ('early', 'late'):
        assert cli.main(['train', '--output_dir', str(tmp_path / run), '--resume']) == 0
        assert capsys.readouterr().out.strip() == str(tmp_path / run / 'best')
        assert_same_params(final_params(tmp_path / 'straight'), final_params(tmp_path / run), atol=0)


@pytest.mark.parametrize('change, words', [
    (dict(max_len=16), ['recipe.max_len: was 24, now 16']),
    (dict(data='other'), ['data.md5: was']),
    (dict(seed=9), ['recipe.seed: was 42, now 9']),
])
def test_resume_with_other_inputs_is_refused(tmp_path, small_data, tiny, monkeypatch, change, words):
    kill_run(run_config(tmp_path, small_data, 'run', num_epochs=2), 'write_plots', 1)
    if change.get('data') == 'other':
        change = dict(data=write_small_data(tmp_path, rows=90, name='other.tsv'))
    with pytest.raises(CheckpointError) as caught:
        train(run_config(tmp_path, change.pop('data', small_data), 'run', num_epochs=2, resume=True, **change))
    assert 'resume refused' in str(caught.value)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize('damaged', ['state.json', 'optimizer.params', 'optimizer.json', 'model/model.params'])
def test_truncated_checkpoint_files_are_named(tmp_path, small_data, tiny, monkeypatch, capsys, damaged):
    kill_run(run_config(tmp_path, small_data, 'run', num_epochs=2), 'write_plots', 1)
    path = tmp_path / 'run' / 'last' / damaged
    path.write_bytes(path.read_bytes()[:max(path.stat().st_size // 2, 1)])
    with pytest.raises(CheckpointError, match=damaged.split('/')[-1]):
        train(run_config(tmp_path, small_data, 'run', num_epochs=2, resume=True))
    assert damaged.split('/')[-1] in cli_error(capsys, 'train', '--output_dir', tmp_path / 'run', '--resume')


# ---------------------------------------------------------------------------- 9-12. settings

@pytest.mark.parametrize('change, match', [
    (dict(max_len=200), 'max_len=200 must be between 3 and 128'),
    (dict(max_len=2), 'max_len=2'),
    (dict(learning_rate=-1e-3), 'learning_rate=-0.001'),
    (dict(learning_rate=float('nan')), 'learning_rate=nan'),
    (dict(max_grad_norm=-1.0), 'max_grad_norm=-1.0'),
    (dict(dropout=-0.1), 'dropout=-0.1'),
    (dict(dropout=1.5), 'dropout=1.5'),
    (dict(max_len='64'), "max_len='64' should be int"),
    (dict(num_epochs=1.5), 'num_epochs=1.5 should be int'),
    (dict(valid_size=1.0), 'valid_size=1.0'),
    (dict(num_classes=1), 'num_classes=1'),
    (dict(select_metric='loss'), "select_metric='loss'"),
    (dict(resume=True, overwrite=True), 'exclude each other'),
])
def test_settings_that_make_no_sense_fail_before_any_work(tmp_path, small_data, change, match):
    with pytest.raises(ConfigError, match=match):
        train(run_config(tmp_path, small_data, 'never', **change))
    assert not (tmp_path / 'never').exists()


def test_train_takes_a_trainconfig_only():
    with pytest.raises(ConfigError, match='expected a TrainConfig, got dict'):
        train({'data': 'x.tsv'})


def test_max_len_is_checked_everywhere(demo_model_dir, tmp_path, capsys):
    tokenizer = TextClassifier.load(demo_model_dir).tokenizer
    for max_len in (0, 2, 600):
        with pytest.raises(ConfigError, match=f'max_len={max_len}'):
            BERTDataset([['문장', 0]], 0, 1, tokenizer, max_len, True, False)
    for max_len in (4096, 0):
        model_dir = tmp_path / f'model{max_len}'
        shutil.copytree(demo_model_dir, model_dir)
        config = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
        config['max_len'] = max_len
        (model_dir / 'config.json').write_text(json.dumps(config), encoding='utf-8')
        with pytest.raises(ModelDirectoryError, match=f'max_len={max_len} must be between 3 and 128'):
            TextClassifier.load(model_dir)
        assert f'max_len={max_len}' in cli_error(capsys, 'predict', '--model', model_dir, '좋아요')


def test_label_ids_in_config_json_must_be_distinct(demo_model_dir, tmp_path, capsys):
    model_dir = tmp_path / 'model'
    shutil.copytree(demo_model_dir, model_dir)
    config = json.loads((model_dir / 'config.json').read_text(encoding='utf-8'))
    config['labels'] = {name: 0 for name in config['labels']}
    (model_dir / 'config.json').write_text(json.dumps(config), encoding='utf-8')
    with pytest.raises(ModelDirectoryError, match=r"labels share id\(s\) \['0'\]"):
        TextClassifier.load(model_dir)
    assert 'share id' in cli_error(capsys, 'predict', '--model', model_dir, '좋아요')


def write_tsv(path, rows):
    pd.DataFrame(rows, columns=['text', 'label']).to_csv(path, sep='\t', index=False)
    return str(path)


def test_label_problems_are_named(tmp_path, capsys):
    frame = demo_frame(60)
    one_class = write_tsv(tmp_path / 'one.tsv', [(t, '긍정') for t in frame['text']])
    with pytest.raises(DataError, match='only one label'):
        train(run_config(tmp_path, one_class, 'one'))
    test_only = write_tsv(tmp_path / 'test.tsv', [(frame['text'][0], '긍정'), (frame['text'][1], '중립')])
    with pytest.raises(DataError, match=r"test.tsv: label\(s\) \['중립'\] in the test rows never occur"):
        train(run_config(tmp_path, write_small_data(tmp_path), 'x', test_data=test_only))
    with pytest.raises(DataError, match='2 distinct labels'):
        train(run_config(tmp_path, write_small_data(tmp_path), 'y', num_classes=3))
    assert 'only one label' in cli_error(capsys, 'train', '--data', one_class, '--bert', 'small',
                                         '--output_dir', tmp_path / 'cli')


def test_numeric_labels_and_number_texts_from_xlsx_agree_with_tsv(tmp_path, tiny):
    frame = demo_frame(80)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(['text', 'label'])
    numeric = {'부정': 0, '긍정': 1}
    for text, label in zip(frame['text'], frame['label']):
        sheet.append([text, float(numeric[label])])  # 0.0 / 1.0, as Excel often stores them
    for number in range(10):
        sheet.append([1000 + number, 1.0])  # a number typed into the text column
    book.save(tmp_path / 'train.xlsx')
    held = demo_frame(90).iloc[80:]  # rows of their own: a test file of training rows is refused
    test = write_tsv(tmp_path / 'test.tsv', [(text, str(numeric[label]))
                                             for text, label in zip(held['text'], held['label'])])

    read = read_table(tmp_path / 'train.xlsx', 'text', 'label')
    assert len(read) == 90 and '1003' in set(read['text'])
    classifier = train(run_config(tmp_path, str(tmp_path / 'train.xlsx'), 'x', test_data=test))
    assert classifier.label_map.names == ['0', '1']


# ---------------------------------------------------------------------------- 13-16. inputs

def test_predict_accepts_any_iterable_and_marks_blank_texts(demo_classifier):
    texts = ['정말 좋아요', '', '  ', '별로예요']
    assert np.array_equal(demo_classifier.predict_proba(t for t in texts[::3]),
                          demo_classifier.predict_proba(texts[::3]))
    records = demo_classifier.predict_records(iter(texts))
    assert [r['text'] for r in records] == texts
    assert [r['label'] is None for r in records] == [False, True, True, False]
    assert records[0]['label'] == demo_classifier.predict(texts[:1])[0]


@pytest.mark.parametrize('call, error, match', [
    (lambda c: c.predict(None), ConfigError, 'got NoneType'),
    (lambda c: c.predict(['좋아요'], batch_size=0), ConfigError, 'batch_size=0'),
    (lambda c: c.predict_proba(['좋아요'], batch_size=-1), ConfigError, 'batch_size=-1'),
    (lambda c: c.predict(['좋아요', 'x\udc80y']), DataError, r'texts\[1\]: text is not valid Unicode'),
])
def test_api_type_errors_are_library_errors(demo_classifier, call, error, match):
    with pytest.raises(error, match=match):
        call(demo_classifier)


def test_load_on_a_missing_gpu_is_a_device_error(demo_model_dir, monkeypatch):
    monkeypatch.setattr('kobert_gluon.device.cuda_build', lambda: False)
    with pytest.raises(DeviceError, match='CPU-only build'):
        TextClassifier.load(demo_model_dir, ctx=mx.gpu(0))


def test_invalid_utf8_on_stdin_names_the_line(demo_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'stdin', io.TextIOWrapper(io.BytesIO('좋아요\n별로\n'.encode() + b'\xff\xfe bad\n')))
    line = cli_error(capsys, 'predict', '--model', demo_model_dir)
    assert 'stdin: line 3 is not valid UTF-8' in line


def test_empty_files_and_empty_splits_are_named(tmp_path, capsys):
    empty = tmp_path / 'empty.tsv'
    empty.write_bytes(b'')
    with pytest.raises(DataError, match='empty.tsv: the file is empty'):
        read_table(empty, 'text', 'label')
    headerless = tmp_path / 'blank.csv'
    headerless.write_text('\n\n', encoding='utf-8')
    with pytest.raises(DataError, match='blank.csv: no header row'):
        read_table(headerless, 'text', 'label')
    assert 'the file is empty' in cli_error(capsys, 'train', '--data', empty, '--output_dir', tmp_path / 'a')
    few = write_tsv(tmp_path / 'few.tsv', [('좋다', '1'), ('싫다', '0'), ('최고', '1'), ('최악', '0')])
    with pytest.raises(DataError, match='the test split is empty'):
        train(run_config(tmp_path, few, 'b', test_size=0.01))
    with pytest.raises(DataError, match='no rows'):
        BERTDataset([], 0, 1, None, 16, True, False)


# ---------------------------------------------------------------------------- 17, 18

def test_error_classes_are_exported_and_share_one_base():
    for name in ('ConfigError', 'DataError', 'ModelDirectoryError', 'CheckpointError', 'AssetError',
                 'DeviceError', 'ConversionError', 'DistributedError', 'MissingExtraError'):
        assert issubclass(getattr(kobert_gluon, name), kobert_gluon.KobertGluonError)


def test_a_bug_is_reported_as_an_internal_error(monkeypatch, capsys, demo_model_dir):
    def bug(*args, **kwargs):
        return 1 / 0
    monkeypatch.setattr(cli.predict, 'read_sentences', bug)
    code = cli.main(['predict', '--model', str(demo_model_dir)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL_ERROR == 3
    assert 'internal error, please report' in err and '--debug' in err and 'Traceback' not in err
    with pytest.raises(ZeroDivisionError):
        cli.main(['--debug', 'predict', '--model', str(demo_model_dir)])


def test_evaluation_shows_progress_over_every_batch(tmp_path, small_data, tiny, monkeypatch):
    bars = []
    original = train_module.tqdm

    def recording_tqdm(iterable=None, **kwargs):
        bars.append((kwargs.get('desc'), len(iterable) if iterable is not None else kwargs.get('total')))
        return original(iterable, **kwargs)
    monkeypatch.setattr(train_module, 'tqdm', recording_tqdm)
    monkeypatch.setattr(evaluate_module, 'tqdm', recording_tqdm)  # the validation and test passes
    train(run_config(tmp_path, small_data, 'run'))
    descriptions = [desc for desc, _ in bars]
    assert {'validating', 'testing the selected model'} <= set(descriptions)
    assert descriptions.count('testing the selected model') == 1 and 'testing' not in descriptions
    assert all(total > 0 for _, total in bars)

