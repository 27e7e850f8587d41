"""Small training runs shared by the test files (tests/ is on sys.path, so `from helpers import ...`)."""
import dataclasses
import os
import signal
import subprocess
import sys
from importlib import resources

import mxnet as mx
import numpy as np
import pandas as pd

from kobert_gluon.models.bert import build_bert
from kobert_gluon.models.config import BertConfig
from kobert_gluon.training.config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_INTERRUPTED = 130

TINY = BertConfig.small(num_layers=1, units=32, hidden_size=64, num_heads=2, max_length=64)


def demo_frame(rows=96):
    path = resources.files('kobert_gluon').joinpath('resources', 'demo_sentiment.tsv')
    return pd.read_csv(path, sep='\t', quoting=3, keep_default_na=False).head(rows)


def write_small_data(directory, rows=96, name='small.tsv'):
    """``rows`` rows of the embedded demo set, as a user's TSV file."""
    path = directory / name
    demo_frame(rows).to_csv(path, sep='\t', index=False)
    return str(path)


def tiny_bert(monkeypatch, dropout=0.0):
    """Make 'small' BERT the 1-layer, 32-unit TINY model (fast), with the given dropout."""
    monkeypatch.setattr(BertConfig, 'small',
                        classmethod(lambda cls, **kw: dataclasses.replace(TINY, dropout=dropout, **kw)))


def run_config(tmp_path, data, name, **overrides):
    settings = dict(data=data, bert='small', max_len=24, batch_size=8, num_epochs=1, learning_rate=1e-3,
                    tokenizer_vocab_size=200, log_interval=1000, output_dir=str(tmp_path / name), ctx='cpu')
    return TrainConfig(**{**settings, **overrides})


def final_params(run_dir, which='last/model'):
    return mx.nd.load(str(run_dir / which / 'model.params'))


def assert_same_params(a, b, atol):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name].asnumpy(), b[name].asnumpy(), rtol=0, atol=atol, err_msg=name)


def save_random_bert(config, path):
    """A BERT of ``config`` (no MLM/NSP heads) with Normal(0.02) weights, saved in the bert_12_768_12 layout."""
    bert = build_bert(config, use_decoder=False, use_classifier=False)
    bert.initialize(init=mx.init.Normal(0.02))
    bert(mx.nd.ones((1, 4)), mx.nd.zeros((1, 4)), mx.nd.array([4]))  # deferred shapes
    bert.save_parameters(str(path))
    return path


def start_cli(argv):
    """``kobert-gluon ARGV`` of this checkout in a subprocess, stdout and stderr piped as text."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')])}
    return subprocess.Popen([sys.executable, '-m', 'kobert_gluon.cli', *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt_cli(argv, when, signum=signal.SIGINT):
    """Run ``kobert-gluon ARGV`` and send ``signum`` once a stderr line contains ``when``. Checks the
    command stopped as interrupted (exit 130, no traceback, nothing on stdout); returns its stderr
    and the command it printed to continue."""
    process = start_cli(argv)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if when in line:
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=300)
    err = ''.join(seen) + err
    assert process.returncode == EXIT_INTERRUPTED, err
    assert 'Traceback' not in err and out == ''
    command, = [line.split('to continue: ', 1)[1] for line in err.splitlines() if 'to continue: ' in line]
    return err, command
