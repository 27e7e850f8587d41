"""The training run a newcomer meets in the first hour: size defaults that learn, a banner that
says what runs, per-epoch lines without the test set, metrics.jsonl and TensorBoard, Ctrl-C and
SIGTERM that save and say how to continue, resume that refuses a silent change, and the
confusion matrix of the selected model."""
import json
import logging
import os
import random
import shlex
import signal
import struct
import sys
import types

import pandas as pd
import pytest

from kobert_gluon import cli
from kobert_gluon.errors import CheckpointError, MissingExtraError
from kobert_gluon.inference.metrics import classification_report
from kobert_gluon.training import finetune as train_module
from kobert_gluon.training import loop
from kobert_gluon.training.config import TrainConfig
from kobert_gluon.training.finetune import train
from kobert_gluon.training.interrupt import TrainingInterrupted
from kobert_gluon.training.report import METRICS_FILE

from helpers import assert_same_params, final_params, interrupt_cli, run_config, start_cli, write_small_data
from hangguard import hang_guard

REAL_EVALUATE = train_module.evaluate_split
WEATHER = ['오늘', '비가', '많이', '내리고', '바람이', '강하게', '불어요', '하늘이', '맑아요', '구름이', '눈이',
           '추워요', '더워요', '날씨가', '흐려요', '천둥이']
FOOD = ['김치찌개가', '맛있어요', '떡볶이는', '매워요', '밥을', '먹었어요', '라면이', '짜요', '불고기가', '달콤해요',
        '식당에서', '반찬이', '국물이', '시원해요', '비빔밥을', '주문했어요']


def separable_data(path, rows=200):
    """Two classes of Korean sentences with no word in common."""
    rng = random.Random(0)
    records = [(' '.join(rng.sample(words, rng.randint(4, 6))), label)
               for index in range(rows) for words, label in [((WEATHER, '날씨'), (FOOD, '음식'))[index % 2]]]
    pd.DataFrame(records, columns=['text', 'label']).to_csv(path, sep='\t', index=False)
    return str(path)


def records(run_dir):
    """metrics.jsonl without the wall-clock fields."""
    lines = (run_dir / METRICS_FILE).read_text(encoding='utf-8').splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ('time', 'seconds')} for line in lines]


# ---------------------------------------------------------------------------- 1. size defaults

def test_own_data_with_bert_small_learns_with_the_small_recipe_from_api_and_cli(tmp_path, monkeypatch, capsys):
    data = separable_data(tmp_path / 'topics.tsv')
    given = dict(data=data, bert='small', max_len=32, ctx='cpu', output_dir=str(tmp_path / 'run'))
    seen = []
    with monkeypatch.context() as patch:
        patch.setattr(cli.finetune, 'train', lambda config: seen.append(config) or types.SimpleNamespace(
            run_dir=config.output_dir))
        cli.main(['train', *[f'--{name}={value}' for name, value in given.items()]])
    api_config = TrainConfig(**given).resolved()
    assert seen == [api_config]  # the CLI runs what the Python API runs

    classifier = train(TrainConfig(**given))
    recorded = json.loads((tmp_path / 'run' / 'train_config.json').read_text())
    assert (recorded['learning_rate'], recorded['batch_size'], recorded['num_epochs'], recorded['log_interval']) \
        == (5e-4, 32, 8, 5)
    assert classifier.test_report['accuracy'] >= 0.9, classifier.test_report  # with 5e-5 it stayed at one class


# ---------------------------------------------------------------------------- 2, 3. console

def test_the_banner_says_what_runs_and_epochs_show_no_test_metrics(tmp_path, small_data, tiny, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    run_dir = tmp_path / 'run'
    train(run_config(tmp_path, small_data, 'run', num_epochs=2, init_from='none', save_every=3))
    messages = [record.getMessage() for record in caplog.records]
    banner, = [m for m in messages if m.startswith('fine-tuning into')]
    for words in ('data:', 'train ', '/ validation ', '/ test ', 'labels:', "['긍정', '부정']", 'model:',
                  'layers x 32 units', 'random weights (--init_from none', 'tokenizer:', 'pieces (',
                  'device:', 'cpu(0)', 'precision float32', 'learning_rate 0.001'):
        assert words in banner, (words, banner)
    epoch_lines = [m for m in messages if m.startswith('epoch ') and ': train loss' in m]
    assert len(epoch_lines) == 2 and not any('test' in m for m in epoch_lines)
    assert sum(m.count('confusion matrix') for m in messages) == 1  # the selected model's report, once
    assert not any('.tmp' in m for m in messages)
    assert f'checkpoint of epoch 2 saved in {run_dir / "last"}' in messages


def test_without_a_terminal_progress_is_logged_by_time_too(tmp_path, small_data, tiny, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    train(run_config(tmp_path, small_data, 'quiet'))  # log_interval 1000, 30 s never pass
    assert not [r for r in caplog.records if r.getMessage().startswith('epoch 1 batch')]
    monkeypatch.setattr(loop, 'PROGRESS_SECONDS', 0)
    train(run_config(tmp_path, small_data, 'timed'))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('epoch 1 batch')]
    assert len(lines) == 9 and lines[-1].startswith('epoch 1 batch 9/9')


def test_log_lines_go_through_tqdm_only_for_the_clis_handler(tmp_path, small_data, tiny, monkeypatch, capsys):
    seen = []
    original = train_module.write_plots

    def spy(*args):
        seen.append(sorted(type(h).__name__ for h in logging.getLogger('kobert_gluon').handlers
                           if not isinstance(h, logging.NullHandler)))
        return original(*args)
    monkeypatch.setattr(train_module, 'write_plots', spy)
    assert cli.main(['train', '--data', small_data, '--bert', 'small', '--num_epochs', '1', '--max_len', '24',
                     '--output_dir', str(tmp_path / 'cli'), '--ctx', 'cpu']) == 0
    train(run_config(tmp_path, small_data, 'api'))
    assert seen == [['_TqdmLoggingHandler'], []]
    assert not [h for h in logging.getLogger('kobert_gluon').handlers if not isinstance(h, logging.NullHandler)]
    assert capsys.readouterr().out.strip() == str(tmp_path / 'cli' / 'best')


# ---------------------------------------------------------------------------- 4. metrics

def test_metrics_jsonl_is_written_as_training_goes_and_a_resume_continues_it(tmp_path, small_data, tiny):
    settings = dict(num_epochs=2, save_every=2, log_interval=2)
    train(run_config(tmp_path, small_data, 'straight', **settings))
    straight = records(tmp_path / 'straight')
    assert [r['type'] for r in straight].count('epoch') == 2 and straight[-1]['type'] == 'test'
    assert [(r['epoch'], r['batch'], r['step']) for r in straight if r['type'] == 'step'][:2] == [(1, 2, 2), (1, 4, 4)]
    assert set(straight[0]) == {'type', 'epoch', 'batch', 'step', 'loss', 'lr', 'train_accuracy'}
    assert {'train_loss', 'train_accuracy', 'valid_accuracy', 'valid_macro_f1'} <= set(straight[4])

    def killed_at_step_5(run, group_size):
        if run.state['step'] == 4:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during step 5
        loop.step(run, group_size)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, 'step', killed_at_step_5)
        with pytest.raises(TrainingInterrupted):
            train(run_config(tmp_path, small_data, 'resumed', **settings))
    assert records(tmp_path / 'resumed')[-1]['step'] == 4
    train(run_config(tmp_path, small_data, 'resumed', **settings, resume=True))
    assert records(tmp_path / 'resumed') == straight


def read_events(directory):
    """(tag, step) of every scalar in the TFRecord event files of ``directory``."""
    from tensorboardX.proto import event_pb2
    found = []
    for name in sorted(os.listdir(directory)):
        data = (directory / name).read_bytes()
        offset = 0
        while offset < len(data):
            length, = struct.unpack('<Q', data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            found += [(value.tag, event.step) for value in event.summary.value]
    return found


@pytest.mark.extra
def test_report_to_tensorboard_writes_the_scalars(tmp_path, small_data, tiny):
    pytest.importorskip('tensorboardX')
    train(run_config(tmp_path, small_data, 'run', log_interval=3, report_to='tensorboard'))
    events = read_events(tmp_path / 'run' / 'tensorboard')
    tags = {tag for tag, _ in events}
    assert {'train/loss', 'train/lr', 'epoch/train_accuracy', 'valid/accuracy', 'test/accuracy'} <= tags
    assert [step for tag, step in events if tag == 'train/loss'] == [3, 6, 9]


def test_report_to_tensorboard_without_the_extra_is_a_clear_error(tmp_path, small_data, monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorboardX', None)
    with pytest.raises(MissingExtraError, match=r'kobert_gluon\[report\]'):
        train(run_config(tmp_path, small_data, 'never', report_to='tensorboard'))
    assert not (tmp_path / 'never').exists()


# ---------------------------------------------------------------------------- 5. Ctrl-C, SIGTERM

def test_sigterm_saves_the_state_after_the_last_step_and_the_resume_is_exact(tmp_path, small_data, tiny):
    settings = dict(num_epochs=2, batch_size=8)
    train(run_config(tmp_path, small_data, 'straight', **settings))

    def terminated_in_step_3(run, group_size):
        if run.state['step'] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives inside the step: the step finishes first
        loop.step(run, group_size)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, 'step', terminated_in_step_3)
        with pytest.raises(TrainingInterrupted) as caught:
            train(run_config(tmp_path, small_data, 'killed', **settings))
    run_dir = tmp_path / 'killed'
    state = json.loads((run_dir / 'last' / 'state.json').read_text())
    assert (state['epoch'], state['batches_done'], state['step']) == (0, 3, 3)
    assert caught.value.command == f'kobert-gluon train --output_dir {run_dir} --resume'
    assert 'saved a checkpoint in' in caught.value.saved and 'after batch 3 of 9' in caught.value.saved
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    train(run_config(tmp_path, small_data, 'killed', **settings, resume=True))
    assert_same_params(final_params(tmp_path / 'straight'), final_params(run_dir), atol=0)


def test_ctrl_c_in_the_cli_saves_and_prints_the_command_that_finishes_the_run(tmp_path):
    data = write_small_data(tmp_path, rows=300)
    argv = ['train', '--data', data, '--bert', 'small', '--max_len', '24', '--batch_size', '4', '--num_epochs', '2',
            '--log_interval', '3', '--ctx', 'cpu', '--learning_rate', '1e-3', '--save_every', '50']
    straight = start_cli(argv + ['--output_dir', str(tmp_path / 'straight')])
    assert straight.wait(timeout=hang_guard(120)) == 0, straight.stderr.read()

    err, command = interrupt_cli(argv + ['--output_dir', str(tmp_path / 'run')], 'epoch 1 batch 3/')
    saved = [line for line in err.splitlines() if line.startswith('kobert-gluon: interrupted: saved a checkpoint in')]
    assert len(saved) == 1 and str(tmp_path / 'run' / 'last') in saved[0], err
    assert command == f"kobert-gluon train --output_dir {tmp_path / 'run'} --resume"
    state = json.loads((tmp_path / 'run' / 'last' / 'state.json').read_text())
    assert state['batches_done'] > 0  # the steps since the last epoch were kept

    resumed = start_cli(shlex.split(command)[1:])
    assert resumed.wait(timeout=hang_guard(120)) == 0, resumed.stderr.read()
    assert_same_params(final_params(tmp_path / 'straight'), final_params(tmp_path / 'run'), atol=0)
    assert records(tmp_path / 'run') == records(tmp_path / 'straight')


# ---------------------------------------------------------------------------- 6. resume

def test_resume_refuses_another_num_epochs_unless_extended_and_a_finished_run_is_left_alone(
        tmp_path, small_data, tiny, monkeypatch, caplog, capsys):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    run_dir = tmp_path / 'run'
    train(run_config(tmp_path, small_data, 'run', num_epochs=1))
    report_bytes = (run_dir / 'test_report.json').read_bytes()
    best = final_params(run_dir, 'best')

    with pytest.raises(CheckpointError, match='num_epochs=1, now num_epochs=3.*--extend'):
        train(run_config(tmp_path, small_data, 'run', num_epochs=3, resume=True))
    assert json.loads((run_dir / 'train_config.json').read_text())['num_epochs'] == 1
    assert cli.main(['train', '--output_dir', str(run_dir), '--resume', '--num_epochs', '3']) == 2
    assert 'num_epochs=1, now num_epochs=3' in capsys.readouterr().err

    def no_evaluation(*args, **kwargs):
        pytest.fail('a finished run was evaluated again')
    with monkeypatch.context() as patch:
        patch.setattr(train_module, 'evaluate_split', no_evaluation)
        again = train(run_config(tmp_path, small_data, 'run', num_epochs=1, resume=True))
    assert 'is finished' in caplog.text
    assert (run_dir / 'test_report.json').read_bytes() == report_bytes
    assert again.test_report['accuracy'] == json.loads(report_bytes)['accuracy']
    assert_same_params(final_params(run_dir, 'best'), best, atol=0)

    extended = train(run_config(tmp_path, small_data, 'run', num_epochs=3, resume=True, extend=True))
    assert [e['epoch'] for e in extended.history['epochs']] == [1, 2, 3]
    rates = [s['lr'] for s in extended.history['steps']]
    old, new = rates[:9], rates[9:]
    assert len(new) == 18 and new[-1] == 0.0
    assert max(new) <= [rate for rate in old if rate > 0][-1]
    assert all(b < a for a, b in zip(new, new[1:]))
    assert json.loads((run_dir / 'train_config.json').read_text())['num_epochs'] == 3
    assert train(run_config(tmp_path, small_data, 'run', num_epochs=3, resume=True)).history == extended.history


# ---------------------------------------------------------------------------- 7. plots

def test_the_confusion_matrix_shows_the_selected_model_on_the_test_set(tmp_path, small_data, tiny, monkeypatch):
    valid = iter([0.9, 0.5])  # epoch 1 is selected

    def scripted(run, loader, desc, every_rank=True, part=None):
        if desc == 'validating':
            accuracy = next(valid)
            return classification_report([0] * 10, [0] * round(10 * accuracy) + [1] * round(10 - 10 * accuracy), 2), None
        return REAL_EVALUATE(run, loader, desc, every_rank)
    monkeypatch.setattr(train_module, 'evaluate_split', scripted)
    calls = []
    original = train_module.plot_training

    def recording(history, run_dir, **settings):
        calls.append(settings)
        return original(history, run_dir, **settings)
    monkeypatch.setattr(train_module, 'plot_training', recording)
    train(run_config(tmp_path, small_data, 'run', num_epochs=2))
    report = json.loads((tmp_path / 'run' / 'test_report.json').read_text())
    assert [call.get('figures') for call in calls[:-1]] == [None, None]  # per epoch: no test set
    (name, kind, data), = calls[-1]['figures']
    assert (name, kind) == ('confusion_matrix.png', 'confusion')
    assert calls[-1]['test_point'] == (report['selected_epoch'], report['accuracy'])
    assert report['selected_epoch'] == 1 and '에폭 1' in data['title']
    assert data['matrix'] == report['confusion_matrix']
    assert (tmp_path / 'run' / 'confusion_matrix.png').is_file()
