"""Trust, third pass (issue 29): labels with one spelling, leakage across splits refused, tables
read as documented, API arguments checked, hand-edited model directories, extras, tiny data.
Each test failed before the change it covers."""
import unicodedata

import pytest

from kobert_gluon import cli
from kobert_gluon.errors import DataError
from kobert_gluon.training.splits import load_splits

from helpers import cli_error, demo_frame, run_config



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


# ---------------------------------------------------------------------------- 2. leakage between splits

def split_files(tmp_path):
    frame = demo_frame(200)
    return (write(tmp_path, frame.iloc[:120], 'train.tsv'), write(tmp_path, frame.iloc[120:160], 'valid.tsv'),
            write(tmp_path, frame.iloc[160:], 'test.tsv'))


@pytest.mark.parametrize('same', [('data', 'test_data'), ('valid_data', 'test_data'), ('data', 'valid_data')])
def test_one_file_given_as_two_splits_is_refused(tmp_path, same):
    train_file, valid_file, test_file = split_files(tmp_path)
    files = {'data': train_file, 'valid_data': valid_file, 'test_data': test_file}
    files[same[1]] = files[same[0]]
    with pytest.raises(DataError, match=r'is the same file as --'):
        load_splits(run_config(tmp_path, files.pop('data'), 'run', **files))
    # another spelling of the same path, and a symbolic link, are the same file
    (tmp_path / 'link.tsv').symlink_to(files.get(same[0], train_file))
    files[same[1]] = str(tmp_path / 'link.tsv')
    with pytest.raises(DataError, match=r'is the same file as --'):
        load_splits(run_config(tmp_path, files.pop('data', train_file), 'run', **files))


@pytest.mark.parametrize('which', ['test_data', 'valid_data'])
def test_a_copy_of_the_training_rows_as_a_split_is_refused_unless_allowed(tmp_path, caplog, which):
    train_file, valid_file, test_file = split_files(tmp_path)
    copy = write(tmp_path, demo_frame(200).iloc[:40], 'copy.tsv')  # 40 training rows under another name
    files = {'valid_data': valid_file, 'test_data': test_file, which: copy}
    with pytest.raises(DataError, match=r'copy.tsv: 40 of 40 .* rows \(100.0%\) are also train.* over the 10% allowed'):
        load_splits(run_config(tmp_path, train_file, 'run', **files))
    splits = load_splits(run_config(tmp_path, train_file, 'run', allow_overlap=True, **files))
    assert len(splits.test) == 40 and '40 of 40' in caplog.text


def test_a_few_shared_rows_are_a_warning_with_the_count(tmp_path, caplog):
    frame = demo_frame(200)
    train_file = write(tmp_path, frame.iloc[:160], 'train.tsv')
    test_file = write(tmp_path, frame.iloc[157:200], 'test.tsv')  # 3 of 43 rows are training rows
    load_splits(run_config(tmp_path, train_file, 'run', test_data=test_file))
    assert 'test.tsv: 3 of 43 test rows (7.0%) are also train or valid rows' in caplog.text


def test_a_data_file_that_repeats_its_rows_is_split_with_a_warning_not_refused(tmp_path, caplog):
    frame = demo_frame(24)
    repeated = write(tmp_path, frame.loc[frame.index.repeat(12)], 'repeated.tsv')  # 288 rows, 24 texts
    splits = load_splits(run_config(tmp_path, repeated, 'run'))
    assert len(splits.test) > 0 and 'the data file repeats them' in caplog.text


def test_evaluate_scores_the_runs_own_test_split_of_repeated_texts(tmp_path, tiny, capsys, caplog):
    frame = demo_frame(24)
    repeated = write(tmp_path, frame.loc[frame.index.repeat(12)], 'repeated.tsv')
    assert cli.main(['train', '--data', repeated, '--bert', 'small', '--output_dir', str(tmp_path / 'run'),
                     '--num_epochs', '1', '--max_len', '24', '--tokenizer_vocab_size', '200', '--ctx', 'cpu']) == 0
    capsys.readouterr()
    report = tmp_path / 'report.json'
    assert cli.main(['evaluate', '--model', str(tmp_path / 'run' / 'best'), '--output', str(report)]) == 0, \
        capsys.readouterr().err
    import json
    written = json.loads(report.read_text())
    assert written['overlap_rows'] > 0.1 * written['sentences']
    assert 'they are still the run\'s held-out rows' in caplog.text
    # the same rows given as --data are refused: they could be anyone's
    line = cli_error(capsys, 'evaluate', '--model', tmp_path / 'run' / 'best', '--data', repeated)
    assert 'over the 10% allowed' in line


# ---------------------------------------------------------------------------- 3. tables read as documented

def workbook(path, sheets, hidden=(), active=None, merge=()):
    """An .xlsx of ``sheets`` ({title: rows}); ``merge``: (title, 'B2:B101') ranges."""
    import openpyxl
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
        sheet.sheet_state = 'hidden' if title in hidden else 'visible'
    for title, cells in merge:
        book[title].merge_cells(cells)
    if active is not None:
        book.active = list(sheets).index(active)
    book.save(path)
    return str(path)


def demo_rows(start, stop):
    frame = demo_frame(stop).iloc[start:]
    return [('text', 'label')] + list(zip(frame['text'], frame['label']))


def test_a_workbook_with_data_on_several_sheets_needs_sheet(tmp_path, capsys):
    from kobert_gluon.text.data import read_table
    path = workbook(tmp_path / 'two.xlsx', {'2023': demo_rows(0, 40), '2024': demo_rows(40, 90), 'notes': []})
    with pytest.raises(DataError, match=r"two.xlsx: 2 sheets hold data \(\['2023', '2024'\]\); name the one .*--sheet"):
        read_table(path, 'text', 'label')
    assert len(read_table(path, 'text', 'label', sheet='2024')) == 50
    with pytest.raises(DataError, match=r"no sheet '2025' \(--sheet\); the sheets are \['2023', '2024', 'notes'\]"):
        read_table(path, 'text', 'label', sheet='2025')
    assert '2 sheets hold data' in cli_error(capsys, 'train', '--data', path, '--output_dir', tmp_path / 'r')
    splits = load_splits(run_config(tmp_path, path, 'run', sheet='2024'))
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 50


def test_a_hidden_sheet_is_skipped_unless_named(tmp_path, caplog):
    from kobert_gluon.text.data import read_table
    path = workbook(tmp_path / 'hidden.xlsx', {'old': [('text', 'label'), ('옛 문장', '긍정')],
                                                'data': demo_rows(0, 30)}, hidden=('old',), active='data')
    assert len(read_table(path, 'text', 'label')) == 30
    assert "hidden sheet(s) ['old'] skipped" in caplog.text
    assert list(read_table(path, 'text', 'label', sheet='old')['text']) == ['옛 문장']


def test_merged_label_cells_label_every_row_of_the_range(tmp_path):
    from kobert_gluon.text.data import read_table
    rows = [('text', 'label')] + [(f'문장 {i}', '긍정' if i in (0, 50) else None) for i in range(100)]
    path = workbook(tmp_path / 'merged.xlsx', {'data': rows}, merge=[('data', 'B2:B51'), ('data', 'B52:B101')])
    frame = read_table(path, 'text', 'label')
    assert len(frame) == 100 and set(frame['label']) == {'긍정'}


@pytest.mark.parametrize('missing_looking', ['NA', 'N/A', 'null', 'nan', 'None', '#N/A', ''])
def test_na_like_texts_are_text_in_tsv_and_xlsx_alike(tmp_path, missing_looking):
    from kobert_gluon.text.data import read_table
    rows = [('text', 'label'), (missing_looking, '긍정'), ('좋아요', '긍정'), ('싫어요', missing_looking)]
    tsv = tmp_path / 'na.tsv'
    tsv.write_text('\n'.join('\t'.join(row) for row in rows) + '\n', encoding='utf-8')
    xlsx = workbook(tmp_path / 'na.xlsx', {'data': [[cell if cell else None for cell in row] for row in rows]})
    from_tsv, from_xlsx = read_table(tsv, 'text', 'label'), read_table(xlsx, 'text', 'label')
    assert from_tsv.to_dict('list') == from_xlsx.to_dict('list')
    expected = 1 if missing_looking == '' else 3  # only an empty cell is missing
    assert len(from_xlsx) == expected


# ---------------------------------------------------------------------------- 5. hand-edited model directories

def edited_model(demo_model_dir, tmp_path, change):
    import json
    import shutil
    copy = tmp_path / 'model'
    shutil.copytree(demo_model_dir, copy)
    config = json.loads((copy / 'config.json').read_text(encoding='utf-8'))
    change(config, copy)
    (copy / 'config.json').write_text(json.dumps(config, ensure_ascii=False), encoding='utf-8')
    return copy


@pytest.mark.parametrize('value', [0, True, False, -1, 2.0, '2', None])
def test_a_hand_edited_num_classes_is_one_clear_error(demo_model_dir, tmp_path, capsys, value):
    copy = edited_model(demo_model_dir, tmp_path, lambda config, _: config.update(num_classes=value))
    line = cli_error(capsys, 'predict', '--model', copy, '좋아요')
    assert 'num_classes=' in line and 'config.json' in line


def test_deep_json_is_one_clear_error(demo_model_dir, tmp_path, capsys):
    import shutil
    copy = tmp_path / 'model'
    shutil.copytree(demo_model_dir, copy)
    (copy / 'config.json').write_text('[' * 100000 + ']' * 100000, encoding='utf-8')
    line = cli_error(capsys, 'predict', '--model', copy, '좋아요')
    assert 'config.json' in line and 'nested too deeply' in line


def test_a_tokenizer_role_naming_the_wrong_file_is_one_clear_error(demo_model_dir, tmp_path, capsys):
    import json

    def swap(config, copy):
        spiece = config['tokenizer']['tokenizer']
        vocab = copy / 'tokenizer' / 'vocab.json'
        vocab.write_text(json.dumps({'idx_to_token': ['a']}), encoding='utf-8')
        from kobert_gluon.assets import md5sum
        config['tokenizer'] = {'tokenizer': {'file': 'vocab.json', 'md5': md5sum(vocab)}, 'vocab_json': spiece}
    line = cli_error(capsys, 'predict', '--model', edited_model(demo_model_dir, tmp_path, swap), '좋아요')
    assert "the 'tokenizer' role names" in line and 'swapped' in line


@pytest.mark.parametrize('flags', [['--text_column', 'label'], ['--label_column', 'text'],
                                   ['--text_pair_column', 'text']])
def test_one_column_in_two_roles_is_refused_before_any_work(tmp_path, capsys, flags):
    data = write(tmp_path, demo_frame(40))
    line = cli_error(capsys, 'train', '--data', data, '--output_dir', tmp_path / 'run', *flags)
    assert 'a column cannot be both' in line or 'must name another column' in line
    assert not (tmp_path / 'run').exists()


# ---------------------------------------------------------------------------- 7. tiny data

def test_ten_rows_fall_back_to_no_selection_with_a_message(tmp_path, caplog):
    frame = demo_frame(96)
    ten = frame.groupby('label').head(5)  # 5 rows of each label: 2 test rows, 8 training rows, 0.1 x 4 = 0 valid
    splits = load_splits(run_config(tmp_path, write(tmp_path, ten), 'run'))
    assert splits.valid == [] and 'valid' not in splits.record
    assert 'leaves no validation row' in caplog.text and 'no model selection' in caplog.text


def classes_frame(classes, rows_each):
    import pandas as pd
    texts = demo_frame(600)['text']
    rows = range(classes * rows_each)
    return pd.DataFrame({'text': [f'{texts[i % 600]} {i}' for i in rows], 'label': [f'c{i % classes}' for i in rows]})


def test_a_split_missing_classes_says_how_many(tmp_path, caplog):
    frame = classes_frame(20, 6)
    small = classes_frame(40, 3)
    small = small[small['label'].map(lambda label: int(label[1:]) >= 20)]  # 20 more classes, of 3 rows
    splits = load_splits(run_config(tmp_path, write(tmp_path, __import__('pandas').concat([frame, small])), 'run', valid_size=0.2))
    assert len(splits.label_map) == 40
    assert 'has no row of 20 of the 40 classes' in caplog.text


def test_500_classes_of_3_rows_train_in_bounded_memory(tmp_path, tiny, caplog):
    import resource

    from kobert_gluon.training.finetune import train
    classifier = train(run_config(tmp_path, write(tmp_path, classes_frame(500, 3)), 'run'))
    assert len(classifier.label_map) == 500 and 'leaves no validation row' in caplog.text
    from PIL import Image
    with Image.open(tmp_path / 'run' / 'confusion_matrix.png') as image:
        assert max(image.size) <= 2600  # at most 25 x 24 inches at 100 dpi, not 45,000 pixels a side
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 8 * 1024 * 1024  # KiB: under 8 GiB


def test_a_500_class_report_prints_no_250000_numbers():
    import numpy as np

    from kobert_gluon.tasks.metrics import classification_report, format_report
    labels = np.arange(1000) % 500
    text = format_report(classification_report(labels, labels, 500), [f'c{i}' for i in range(500)])
    assert 'too large to print' in text and len(text.splitlines()) == 503


def test_a_tokenizer_role_naming_a_file_that_is_no_sentencepiece_model_is_one_clear_error(demo_model_dir, tmp_path,
                                                                                           capsys):
    import shutil

    from kobert_gluon.assets import md5sum

    def point_at_other_file(config, copy):
        other = copy / 'tokenizer' / 'notes.bin'
        shutil.copyfile(copy / 'model.params', other)
        config['tokenizer']['tokenizer'] = {'file': 'notes.bin', 'md5': md5sum(other)}
    line = cli_error(capsys, 'predict', '--model', edited_model(demo_model_dir, tmp_path, point_at_other_file), '좋아요')
    assert "the 'tokenizer' role names" in line and 'not a SentencePiece model' in line
