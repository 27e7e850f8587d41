"""The parts of a fine-tuning run a newcomer meets first: size defaults, the extended schedule,
Ctrl-C/SIGTERM between steps, metrics.jsonl, and how the start is described."""
import dataclasses
import json
import os
import signal

import mxnet as mx
import pytest

from kobert_gluon.errors import CheckpointError, ConfigError
from kobert_gluon.models import pretrained
from kobert_gluon.tasks import registry
from kobert_gluon.training import finetune
from kobert_gluon.training.config import SIZE_DEFAULTS, TrainConfig
from kobert_gluon.training.interrupt import InterruptGuard
from kobert_gluon.training.report import METRICS_FILE, MetricsLog
from kobert_gluon.training.resume import check_num_epochs, extended_schedule, rate_at

from helpers import TINY


# ---------------------------------------------------------------------------- size defaults

@pytest.mark.parametrize('settings, size', [({}, 'small'), ({'bert': 'small', 'data': 'x.tsv'}, 'small'),
                                            ({'data': 'x.tsv'}, 'kobert'), ({'bert': 'kobert'}, 'kobert')])
def test_unset_recipe_settings_take_the_sizes_defaults(settings, size):
    config = TrainConfig(**settings).resolved()
    assert config.bert == size
    assert {name: getattr(config, name) for name in SIZE_DEFAULTS[size]} == SIZE_DEFAULTS[size]
    assert SIZE_DEFAULTS['small'] == {'learning_rate': 5e-4, 'batch_size': 32, 'num_epochs': 8, 'log_interval': 5}
    assert SIZE_DEFAULTS['kobert'] == {'learning_rate': 5e-5, 'batch_size': 64, 'num_epochs': 5, 'log_interval': 200}


def test_settings_given_are_kept_and_demo_still_works():
    config = TrainConfig(data='x.tsv', bert='small', learning_rate=1e-3, num_epochs=2).resolved()
    assert (config.learning_rate, config.num_epochs, config.batch_size) == (1e-3, 2, 32)
    assert TrainConfig.demo(num_epochs=1) == TrainConfig(bert='small', learning_rate=5e-4, batch_size=32,
                                                         num_epochs=1, log_interval=5, select_metric='accuracy')
    assert TrainConfig().validate() is not None  # the unresolved defaults validate as what will run
    with pytest.raises(ConfigError, match='batch_size=0'):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(ConfigError, match='--extend .* needs --resume'):
        TrainConfig(extend=True).validate()


# ---------------------------------------------------------------------------- --extend

def test_a_changed_num_epochs_is_refused_without_extend():
    with pytest.raises(CheckpointError, match='num_epochs=1, now num_epochs=3.*--extend'):
        check_num_epochs('run', 1, TrainConfig(num_epochs=3, resume=True, output_dir='run'))
    with pytest.raises(CheckpointError, match='only makes a run longer'):
        check_num_epochs('run', 3, TrainConfig(num_epochs=2, resume=True, extend=True, output_dir='run'))
    check_num_epochs('run', 1, TrainConfig(num_epochs=3, resume=True, extend=True, output_dir='run'))
    check_num_epochs('run', 3, TrainConfig(num_epochs=3, resume=True, output_dir='run'))


@pytest.mark.parametrize('done, old_total, new_total, warmup_ratio', [
    (7, 20, 60, 0.1),   # decaying: continues from the current rate
    (1, 20, 60, 0.25),  # still warming up: finishes its warmup, then decays over the new total
    (20, 20, 40, 0.1),  # finished (rate 0): continues from its last non-zero rate
])
def test_an_extended_schedule_never_jumps_up_and_ends_at_zero(done, old_total, new_total, warmup_ratio):
    peak = 1e-3
    warmup = int(old_total * warmup_ratio)
    before = [rate_at(step, old_total, warmup, peak) for step in range(1, done + 1)]
    schedule = extended_schedule({'step': done, 'lr_schedule': None}, old_total, new_total, warmup_ratio, peak)
    after = [rate_at(step, new_total, warmup, peak, schedule) for step in range(done + 1, new_total + 1)]
    rates = (before[:-1] if before[-1] == 0 else before) + after  # a finished run's last step had rate 0
    last_nonzero = [rate for rate in before if rate > 0][-1]
    assert after[-1] == 0.0 and max(after) <= max(last_nonzero, peak if done < warmup else 0) + 1e-12
    peak_step = max(warmup, 1)
    assert all(b <= a + 1e-12 for a, b in zip(rates[peak_step - 1:], rates[peak_step:])), rates  # no jump up
    if done >= warmup:
        assert after[0] < last_nonzero
    # extending again continues from the extended schedule, not from the original one
    again = extended_schedule({'step': new_total - 5, 'lr_schedule': schedule}, new_total, new_total * 2,
                              warmup_ratio, peak)
    assert again['decay_from'][1] == pytest.approx(rate_at(new_total - 5, new_total, warmup, peak, schedule))


# ---------------------------------------------------------------------------- Ctrl-C, SIGTERM

@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_signals_raise_keyboard_interrupt_but_wait_for_a_step(signum):
    finished = []
    with InterruptGuard() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.deferred():
                os.kill(os.getpid(), signum)
                finished.append('the step')  # runs although the signal came first
        assert finished == ['the step']
        with pytest.raises(KeyboardInterrupt):
            with guard.deferred():
                os.kill(os.getpid(), signum)
                os.kill(os.getpid(), signum)  # a second one does not wait
                finished.append('never')
        assert finished == ['the step']
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers put back


# ---------------------------------------------------------------------------- metrics.jsonl

def test_metrics_of_a_resumed_run_drop_what_follows_the_checkpoint(tmp_path):
    log = MetricsLog(str(tmp_path))
    for epoch in (1, 2):
        for batch in (2, 4):
            log.step(epoch, batch, (epoch - 1) * 4 + batch, 0.5, 1e-3, 0.5)
        log.epoch(epoch, epoch * 4, 1.0, 0.5, 0.5, None)
    log.test(8, 2, {'accuracy': 0.9, 'macro_f1': 0.8})
    # a checkpoint in epoch 2 after batch 2
    MetricsLog(str(tmp_path), resume_state={'epoch': 1, 'batches_done': 2, 'step': 6})
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [(r['type'], r['epoch'], r.get('batch')) for r in records] == [
        ('step', 1, 2), ('step', 1, 4), ('epoch', 1, None), ('step', 2, 2)]
    assert all(isinstance(r['time'], float) for r in records)


# ---------------------------------------------------------------------------- the start

def test_init_from_none_is_random_weights_even_for_kobert(monkeypatch):
    def no_kobert(*args, **kwargs):
        raise AssertionError("--init_from none must not load KoBERT's weights")
    monkeypatch.setattr('kobert_gluon.assets.resolve', no_kobert)
    built = {}
    monkeypatch.setattr(registry.get('classification'), 'build_model',
                        lambda *args, bert_params=None: built.setdefault('params', bert_params)
                        or mx.gluon.nn.HybridSequential())
    config = TrainConfig(bert='kobert', init_from='none', data='x.tsv')
    finetune.prepare_model(config, TINY, 2, [mx.cpu()], finetune.start_from(config)[0])
    assert built == {'params': None}
    assert 'random weights (--init_from none' in pretrained.describe_start(None, None, 'none', kobert=True)
    assert "KoBERT's pretrained weights (k.params)" == pretrained.describe_start('k.params', None, None, kobert=True)
