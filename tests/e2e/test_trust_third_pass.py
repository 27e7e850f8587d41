"""Trust, third pass (issue 29): labels with one spelling, leakage across splits refused, tables
read as documented, API arguments checked, hand-edited model directories, extras, tiny data.
Each test failed before the change it covers."""
import unicodedata

import pytest

from kobert_gluon import cli
from kobert_gluon.errors import DataError
from kobert_gluon.training.splits import load_splits

from helpers import demo_frame, run_config


def cli_error(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    _, err = capsys.readouterr()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith('kobert-gluon: error: ')]
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


def write(tmp_path, frame, name='data.tsv'):
    path = tmp_path / name
    frame.to_csv(path, sep='\t', index=False)
    return str(path)


# ---------------------------------------------------------------------------- 1. one spelling per label

@pytest.mark.parametrize('respell', [lambda label: unicodedata.normalize('NFD', label),
                                     lambda label: label + '\u200b', lambda label: f' {label} '])
def test_a_respelled_label_is_the_same_class_at_train_time(tmp_path, respell):
    frame = demo_frame(96)
    frame.loc[::3, 'label'] = frame.loc[::3, 'label'].map(respell)
    splits = load_splits(run_config(tmp_path, write(tmp_path, frame), 'run'))
    assert splits.label_map.names == sorted(demo_frame(96)['label'].unique())


@pytest.mark.parametrize('respell', [lambda n: '０１'[n], lambda n: f'0{n}', lambda n: f'{n}.0'])
def test_respelled_numbers_are_the_same_class_at_train_time(tmp_path, respell):
    frame = demo_frame(96)
    frame['label'] = (frame['label'] == '긍정').astype(int).astype(str)
    frame.loc[::2, 'label'] = frame.loc[::2, 'label'].map(lambda label: respell(int(label)))
    assert load_splits(run_config(tmp_path, write(tmp_path, frame), 'run')).label_map.names == ['0', '1']


def test_nan_among_numeric_labels_is_refused_from_the_cli(tmp_path, capsys):
    frame = demo_frame(96)
    frame['label'] = (frame['label'] == '긍정').astype(int).astype(str)
    frame.loc[5, 'label'] = 'nan'
    line = cli_error(capsys, 'train', '--data', write(tmp_path, frame), '--output_dir', tmp_path / 'run')
    assert "label 'nan' (row(s) 6) is not a number" in line
