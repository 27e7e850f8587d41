"""benchmarks/benchmark.py: the --smoke run end to end, and the table for rows that did not run."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
from hangguard import hang_guard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'benchmarks', 'benchmark.py')
SMOKE_TIMEOUT = hang_guard(60)  # 20-30 s on two idle cores: a hang guard, not a speed check


def load_benchmark():
    spec = importlib.util.spec_from_file_location('kobert_benchmark', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(stdout, first_cell_prefix):
    return [line for line in stdout.splitlines() if line.startswith('| ' + first_cell_prefix)]


def cells(row):
    return [c.strip() for c in row.strip().strip('|').split('|')]


def torch_available():
    return all(importlib.util.find_spec(m) is not None for m in ('torch', 'transformers'))


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'smoke.json'
    started = time.time()
    # float32 only: the other precisions belong to kobert_gluon.models.precision's own tests.
    done = subprocess.run([sys.executable, SCRIPT, '--smoke', '--precisions', 'float32', '--json', str(out)],
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT, cwd=REPO)
    return done, time.time() - started, out


@pytest.mark.extra  # also run with torch installed (CI phase 2)
def test_smoke_run_prints_the_tables(smoke):
    done, seconds, _ = smoke
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith('Machine: ')
    assert '| setup | precision | train samples/s | train tokens/s | infer samples/s | infer tokens/s |' in out

    mxnet_rows = table_rows(out, 'kobert_gluon (MXNet')
    assert len(mxnet_rows) == 1
    row = cells(mxnet_rows[0])
    assert row[1] == 'float32'
    for value in row[2:8]:  # rates and peak RSS are positive numbers
        assert float(value.replace(',', '')) > 0, row

    torch_rows = table_rows(out, 'PyTorch')
    assert [cells(r)[1] for r in torch_rows] == ['float32', 'bfloat16 (autocast)', 'int8 (quantize_dynamic)']
    for torch_row in map(cells, torch_rows):
        if not torch_available():
            assert torch_row[2].startswith('skipped: ') and 'not installed' in torch_row[2]
        elif torch_row[1].startswith('int8'):  # PyTorch's int8 is inference only
            assert torch_row[2] == 'skipped: quantize_dynamic is for inference only', torch_row
            assert float(torch_row[4].replace(',', '')) > 0 and float(torch_row[7].replace(',', '')) > 0, torch_row
        else:
            assert float(torch_row[2].replace(',', '')) > 0, torch_row
    if torch_available():
        assert row[8].endswith('×') and row[9].endswith('×')

    plain, ours = (cells(r) for r in table_rows(out, 'gluonnlp BERTSentenceTransform') +
                   table_rows(out, 'kobert_gluon BERTDataset'))
    assert float(plain[1].replace(',', '')) > 0 and float(ours[1].replace(',', '')) > 0
    assert 'arrays identical' in out


@pytest.mark.extra
def test_smoke_json_has_the_raw_numbers(smoke):
    done, _, out = smoke
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text(encoding='utf-8'))
    assert report['preset'] == 'smoke'
    assert report['config']['bert']['num_layers'] == 1 and report['config']['batch_size'] == 4
    for mode in ('train', 'infer'):
        (run,) = report['runs'][f'mxnet|float32|{mode}']
        assert run['samples_per_s'] > 0 and run['peak_rss_mb'] > 0
        assert len(run['step_seconds']) == report['config']['steps']
        assert run['tokens_per_s'] == pytest.approx(run['samples_per_s'] * report['config']['seq_len'])
    assert report['data']['sentences'] == report['config']['sentences']


def test_rows_without_numbers_say_why():
    bench = load_benchmark()
    config = bench.Config(bert=bench.dataclasses.asdict(bench.PRESETS['smoke']['bert']),
                          batch_size=4, seq_len=16, steps=2, warmup=1, threads=2)
    measured = {'samples_per_s': 10.0, 'tokens_per_s': 160.0, 'peak_rss_mb': 300.0, 'seconds': 0.8, 'runs': 1}
    report = {
        'machine': {'cpu': 'test CPU', 'cpus_available': 2, 'cpus_online': 2, 'flags': {'avx512_bf16': False},
                    'native_bf16': False, 'python': '3.11', 'mxnet': '1.9.1', 'gluonnlp': '0.10.0',
                    'kobert_gluon': '0', 'torch': None, 'transformers': None, 'threads': 2,
                    'load_average_start': 0.1, 'load_average_end': 0.2},
        'config': bench.dataclasses.asdict(config), 'preset': 'smoke', 'repeats': 1, 'one_process': True,
        'rows': [('mxnet', 'float32'), ('torch', 'float32'), ('mxnet', 'int8'), ('mxnet', 'bfloat16')],
        'notes': {'torch|float32|train': 'skipped: torch not installed',
                  'torch|float32|infer': 'skipped: torch not installed',
                  'mxnet|int8|train': 'skipped: int8 is for inference only',
                  'mxnet|bfloat16|train': 'failed: boom', 'mxnet|bfloat16|infer': 'failed: boom'},
        'data_note': 'skipped by --skip-data',
    }
    medians = {'mxnet|float32|train': measured, 'mxnet|float32|infer': measured, 'mxnet|int8|infer': measured}
    text = bench.format_report(report, medians, None)
    rows = {(c[0].split(' ')[0], c[1]): c for c in map(cells, table_rows(text, ''))}
    assert rows[('kobert_gluon', 'float32')][2] == '10.0'
    assert rows[('kobert_gluon', 'float32')][8] == 'n/a'  # no torch baseline to compare with
    assert rows[('PyTorch', 'float32')][2] == 'skipped: torch not installed'
    assert rows[('kobert_gluon', 'int8')][2] == 'skipped: int8 is for inference only'
    assert rows[('kobert_gluon', 'int8')][4] == '10.0'
    assert rows[('kobert_gluon', 'bfloat16')][2] == 'failed: boom'
    assert 'skipped by --skip-data' in text


def test_peak_rss_is_the_workers_own():
    """ru_maxrss of a child counts the parent's pre-exec peak on Linux; VmHWM does not."""
    if not os.path.exists('/proc/self/status'):
        pytest.skip('needs /proc')
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b'\x01' * len(ballast[::4096])
    code = (f'import importlib.util; s = importlib.util.spec_from_file_location("b", {SCRIPT!r}); '
            'm = importlib.util.module_from_spec(s); s.loader.exec_module(m); print(m.peak_rss_mb())')
    child_mb = float(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                                    check=True, timeout=hang_guard(30)).stdout)
    del ballast
    assert child_mb < 200


def test_precision_hooks_follow_kobert_gluon_precision(monkeypatch):
    """Rows are skipped exactly where kobert_gluon's precision API says a precision cannot run."""
    import mxnet as mx

    from kobert_gluon import runtime

    import kobert_gluon as kg
    bench = load_benchmark()
    monkeypatch.setattr(runtime, 'has_bf16', lambda: False)
    assert bench.unsupported('bfloat16', 'train') == 'kobert_gluon falls back to float32 here'
    assert 'inference only' in bench.unsupported('int8', 'train')
    assert bench.unsupported('int8', 'infer') is None
    names = bench.mxnet_precisions()
    assert names[:3] == ['float32', 'bfloat16', 'int8']
    assert bench.unsupported('float32', 'train') is None and bench.unsupported('float32', 'infer') is None

    seen = {}
    monkeypatch.setattr(kg, 'for_inference',
                        lambda model, name, ctx, calibration: seen.update(shapes=[a.shape for a in calibration]) or model)
    batches = [tuple(mx.nd.ones((2, 5)) for _ in range(3)) for _ in range(3)]
    bench.for_inference('int8', 'model', batches)
    assert seen['shapes'] == [(6, 5)] * 3  # the calibration batches, concatenated
