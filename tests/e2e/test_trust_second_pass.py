"""Trust, second pass: what a run owns, what a model directory may name, files changed after
they were written, NaN weights, strict data files, settings checked up front, full disks, and
the converter's labels and max_len. Each test failed before the change it covers."""
import errno
import importlib.util
import json
import os
import shutil
import subprocess

import mxnet as mx
import numpy as np
import pytest

from kobert_gluon import cli, fileio
from kobert_gluon.errors import CheckpointError, ConfigError, ConversionError, DataError, ModelDirectoryError
from kobert_gluon.inference.classifier import TextClassifier
from kobert_gluon.inference.export import export
from kobert_gluon.interop import transformers as convert
from kobert_gluon.models.params import NonFiniteError
from kobert_gluon.text.data import read_table
from kobert_gluon.training import finetune as train_module
from kobert_gluon.training import pretrain, rundir
from kobert_gluon.training.config import PretrainConfig
from kobert_gluon.training.finetune import train
from kobert_gluon.training.optim import check_finite

from helpers import cli_error, demo_frame, run_config


def needs_convert(test):
    """convert writes safetensors: the test needs the convert extra (CI runs it in its second phase)."""
    missing = importlib.util.find_spec('safetensors') is None
    skip = pytest.mark.skipif(missing, reason='the convert extra is not installed (bash scripts/install.sh convert)')
    return pytest.mark.extra(skip(test))


TINY = {'num_layers': 1, 'units': 32, 'hidden_size': 64, 'num_heads': 2}



def kill_run(config, name, calls):
    """Train until ``finetune.<name>`` has run ``calls`` times, then die there."""
    original, seen = getattr(train_module, name), []

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append(1)
        if len(seen) == calls:
            raise KeyboardInterrupt(name)
        return result
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, name, wrapper)
        with pytest.raises(KeyboardInterrupt):
            train(config)


def copy_model(source, target):
    shutil.copytree(source, target)
    return target


def flip_a_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def pretrain_config(tmp_path, name, **overrides):
    corpus = tmp_path / 'corpus.txt'
    if not corpus.exists():
        corpus.write_text('\n'.join(demo_frame(200)['text']) + '\n', encoding='utf-8')
    settings = dict(corpus=str(corpus), output_dir=str(tmp_path / name), tokenizer='train', tokenizer_vocab_size=300,
                    max_len=32, batch_size=8, num_steps=4, learning_rate=1e-3, chunk_lines=64, num_procs=0,
                    save_every=2, log_interval=1, ctx='cpu', **TINY)
    return PretrainConfig(**{**settings, **overrides})


# ---------------------------------------------------------------------------- 1. ownership

def test_overwrite_deletes_only_what_the_run_wrote(tmp_path, small_data, tiny):
    run = tmp_path / 'run'
    train(run_config(tmp_path, small_data, 'run'))
    manifest = json.loads((run / rundir.MANIFEST_FILE).read_text())['entries']
    assert {'train_config.json', 'labels.json', 'last', 'best', 'split.json'} <= set(manifest)
    # everything the run wrote (plots, metrics.jsonl, test_report.json, ...) is in the manifest
    assert set(os.listdir(run)) - {rundir.LOCK_FILE, rundir.MANIFEST_FILE} <= set(manifest)
    (run / 'notes.txt').write_text('my notes', encoding='utf-8')
    (run / 'mine').mkdir()
    (run / 'mine' / 'data.tsv').write_text('keep', encoding='utf-8')

    train(run_config(tmp_path, small_data, 'run', seed=7, overwrite=True))
    assert (run / 'notes.txt').read_text(encoding='utf-8') == 'my notes'
    assert (run / 'mine' / 'data.tsv').read_text(encoding='utf-8') == 'keep'
    assert (run / 'best' / 'model.params').is_file()
    assert 'notes.txt' not in json.loads((run / rundir.MANIFEST_FILE).read_text())['entries']


@pytest.mark.parametrize('flags', [{}, {'overwrite': True}])
def test_a_folder_that_is_not_a_run_is_never_used_or_cleared(tmp_path, small_data, tiny, capsys, flags):
    folder = tmp_path / 'folder'
    folder.mkdir()
    (folder / 'train_config.json').write_text('{}', encoding='utf-8')  # looks like a run, is none
    shutil.copyfile(small_data, folder / 'data.tsv')
    before = sorted(os.listdir(folder))
    with pytest.raises(CheckpointError, match='holds no run.*data.tsv'):
        train(run_config(tmp_path, str(folder / 'data.tsv'), 'folder', **flags))
    assert sorted(os.listdir(folder)) == before  # not even a run.lock left behind
    line = cli_error(capsys, 'train', '--data', folder / 'data.tsv', '--output_dir', folder, '--overwrite')
    assert 'holds no run' in line and sorted(os.listdir(folder)) == before


@pytest.mark.parametrize('where', ['cwd', 'home', 'root'])
def test_root_home_and_current_folder_are_refused_also_through_symlinks(tmp_path, small_data, monkeypatch, where):
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv('HOME', str(work) if where == 'home' else str(tmp_path / 'elsewhere'))
    if where == 'cwd':
        monkeypatch.setenv('HOME', str(tmp_path / 'elsewhere'))
    target = {'cwd': work, 'home': work, 'root': '/'}[where]
    (tmp_path / 'link').symlink_to(target)
    if where == 'home':
        monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match='cannot be'):
        train(run_config(tmp_path, small_data, 'link', overwrite=True))
    with pytest.raises(CheckpointError, match='cannot be'):
        pretrain.pretrain(pretrain_config(tmp_path, 'link', overwrite=True))


def test_a_run_that_failed_before_its_first_checkpoint_does_not_block_its_folder(tmp_path, small_data, tiny,
                                                                                  caplog):
    with pytest.raises(DataError, match="no column 'txet'"):
        train(run_config(tmp_path, small_data, 'run', text_column='txet'))
    assert (tmp_path / 'run' / 'train_config.json').is_file()
    (tmp_path / 'run' / 'notes.txt').write_text('mine', encoding='utf-8')
    with caplog.at_level('WARNING'):
        train(run_config(tmp_path, small_data, 'run'))  # no flag needed
    assert 'stopped before its first checkpoint' in caplog.text
    assert json.loads((tmp_path / 'run' / 'train_config.json').read_text())['text_column'] == 'text'
    assert (tmp_path / 'run' / 'notes.txt').is_file()


@needs_convert
def test_convert_and_export_never_replace_a_model_they_did_not_write(demo_model_dir, tmp_path, capsys):
    hf = convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    trained = copy_model(demo_model_dir, tmp_path / 'run' / 'best')
    (trained / 'notes.txt').write_text('mine', encoding='utf-8')
    before = (trained / 'model.params').read_bytes()
    with pytest.raises(ConversionError, match='did not write.*--overwrite'):
        convert.from_transformers(hf, trained)
    line = cli_error(capsys, 'convert', '--from-transformers', hf, '--output', trained)
    assert 'did not write' in line and (trained / 'model.params').read_bytes() == before
    with pytest.raises(ConfigError, match='did not write'):
        export(demo_model_dir, trained)
    assert (trained / 'model.params').read_bytes() == before

    assert cli.main(['convert', '--from-transformers', str(hf), '--output', str(trained), '--overwrite']) == 0
    assert (trained / 'notes.txt').read_text(encoding='utf-8') == 'mine'  # only its model files replaced
    assert json.loads((trained / fileio.OUTPUT_RECORD).read_text())['tool'] == 'convert'
    convert.from_transformers(hf, trained)  # its own output: no flag needed
    TextClassifier.load(trained)

    exported = tmp_path / 'exported'
    export(demo_model_dir, exported)
    (exported / 'README.txt').write_text('mine', encoding='utf-8')
    export(demo_model_dir, exported, name='other')
    assert (exported / 'README.txt').is_file() and not (exported / 'model-symbol.json').exists()
    run = tmp_path / 'run'
    (run / rundir.MANIFEST_FILE).write_text(json.dumps({'format': rundir.MANIFEST_FORMAT, 'entries': ['best']}))
    with pytest.raises(ConversionError, match="training run's folder"):
        convert.from_transformers(hf, run, overwrite=True)


# ---------------------------------------------------------------------------- 2. containment

@pytest.mark.parametrize('what', ['tokenizer folder', 'params file'])
def test_symlinks_out_of_a_model_directory_are_refused(demo_model_dir, tmp_path, capsys, what):
    model = copy_model(demo_model_dir, tmp_path / 'model')
    outside = tmp_path / 'outside'
    if what == 'tokenizer folder':
        shutil.move(str(model / 'tokenizer'), str(outside))
        (model / 'tokenizer').symlink_to(outside, target_is_directory=True)
    else:
        outside.mkdir()
        shutil.move(str(model / 'model.params'), str(outside / 'model.params'))
        (model / 'model.params').symlink_to(outside / 'model.params')
    with pytest.raises(ModelDirectoryError, match='outside the model directory'):
        TextClassifier.load(model)
    assert 'outside the model directory' in cli_error(capsys, 'export', '--model', model, '--output', tmp_path / 'x')


def test_a_symlinked_tokenizer_folder_of_a_pretrain_record_or_converted_folder_is_refused(tmp_path):
    from kobert_gluon.text.token_ids import recorded_file

    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'elsewhere' / 'x.spiece').write_text('x')
    (tmp_path / 'result').mkdir()
    (tmp_path / 'result' / 'tokenizer').symlink_to(tmp_path / 'elsewhere', target_is_directory=True)
    with pytest.raises(ConfigError, match='outside'):
        fileio.file_inside(str(tmp_path / 'result'), 'tokenizer', 'x.spiece', ConfigError, 'pretrain.json')
    with pytest.raises(ConversionError, match='outside'):
        recorded_file(str(tmp_path / 'result'), {'file': 'x.spiece'})


# ---------------------------------------------------------------------------- 3. integrity

def test_a_same_size_change_of_a_checkpoint_is_refused_at_resume(tmp_path, small_data, tiny, capsys):
    kill_run(run_config(tmp_path, small_data, 'run', num_epochs=2), 'write_plots', 1)
    params = tmp_path / 'run' / 'last' / 'model' / 'model.params'
    size = params.stat().st_size
    flip_a_byte(params)
    assert params.stat().st_size == size
    with pytest.raises(CheckpointError, match='model.params: changed after it was written'):
        train(run_config(tmp_path, small_data, 'run', num_epochs=2, resume=True))
    assert 'model.params' in cli_error(capsys, 'train', '--output_dir', tmp_path / 'run', '--resume')


def test_a_same_size_change_of_a_model_directory_is_refused_at_load(demo_model_dir, tmp_path):
    model = copy_model(demo_model_dir, tmp_path / 'model')
    assert 'model.params' in json.loads((model / 'config.json').read_text())['files']
    flip_a_byte(model / 'model.params')
    with pytest.raises(ModelDirectoryError, match='model.params: changed after it was written'):
        TextClassifier.load(model)


def test_check_finite_names_the_step():
    assert check_finite(0.5, 'the loss', 3) == 0.5
    for value in (float('nan'), float('inf')):
        with pytest.raises(NonFiniteError, match='the loss is .* at step 7'):
            check_finite(value, 'the loss', 7)


def test_a_nan_loss_in_pretraining_stops_keeping_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = pretrain.train_step

    def poisoned(model, *args, **kwargs):
        if kwargs.get('step', args[-1]) == 3:
            for param in model.collect_params().values():
                param.set_data(param.data() * float('nan'))
        return original(model, *args, **kwargs)
    monkeypatch.setattr(pretrain, 'train_step', poisoned)
    with pytest.raises(NonFiniteError, match='at step 3'):
        pretrain.pretrain(pretrain_config(tmp_path, 'run'))
    state = json.loads((tmp_path / 'run' / 'last' / 'state.json').read_text())
    assert state['step'] == 2 and not (tmp_path / 'run' / 'bert.params').exists()
    assert all(np.isfinite(a.asnumpy()).all() for a in mx.nd.load(str(tmp_path / 'run' / 'last' / 'bert.params')).values())


@needs_convert
def test_nan_weights_are_never_saved_loaded_or_converted(demo_model_dir, tmp_path):
    classifier = TextClassifier.load(demo_model_dir)
    params = classifier.model.collect_params()
    name = sorted(params)[0]
    params[name].set_data(params[name].data() * float('nan'))
    with pytest.raises(ModelDirectoryError, match='NaN or Inf'):
        classifier.save(tmp_path / 'saved')
    assert not (tmp_path / 'saved').exists()
    with pytest.raises(ConversionError, match='NaN or Inf'):
        convert.to_transformers(classifier, tmp_path / 'hf_nan')
    assert not (tmp_path / 'hf_nan').exists()

    model = copy_model(demo_model_dir, tmp_path / 'model')
    arrays = mx.nd.load(str(model / 'model.params'))
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] * float('inf')
    mx.nd.save(str(model / 'model.params'), arrays)
    config = json.loads((model / 'config.json').read_text())
    config.pop('files')  # as a directory of an older version: no sha256 to catch the change
    (model / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match='NaN or Inf'):
        TextClassifier.load(model)

    from safetensors.numpy import load_file, save_file
    hf = convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    tensors = load_file(os.path.join(hf, 'model.safetensors'))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] * np.float32('nan')
    save_file(tensors, os.path.join(hf, 'model.safetensors'), metadata={'format': 'pt'})
    with pytest.raises(ConversionError, match='NaN or Inf'):
        convert.from_transformers(hf, tmp_path / 'back')


# ---------------------------------------------------------------------------- 4. data files

def test_a_repeated_column_name_is_an_error(tmp_path):
    path = tmp_path / 'dup.tsv'
    path.write_text('id\tdocument\tdocument\tlabel\n1\t좋다\t좋다\t1\n', encoding='utf-8')
    with pytest.raises(DataError, match=r"\['document'\] appear more than once"):
        read_table(path, 'document', 'label')


def test_a_nul_byte_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / 'nul.tsv'
    path.write_bytes('text\tlabel\n좋다\t1\n나\x00쁘다\t0\n'.encode('utf-8'))
    with pytest.raises(DataError, match='line 3 contains a NUL byte'):
        read_table(path, 'text', 'label')


@pytest.mark.parametrize('suffix, sep', [('.tsv', '\t'), ('.csv', ',')])
@pytest.mark.parametrize('bad, fields', [('extra', 3), ('missing', 1)])
def test_ragged_rows_are_an_error_naming_the_first_bad_row(tmp_path, suffix, sep, bad, fields):
    rows = [f'문장 {i}{sep}{i % 2}' for i in range(200)]
    rows[0] = rows[0] + sep + 'stray' if bad == 'extra' else '문장 0'
    path = tmp_path / f'ragged{suffix}'
    path.write_text(f'text{sep}label\n' + '\n'.join(rows) + '\n', encoding='utf-8')
    with pytest.raises(DataError, match=f'line 2 \\(data row 1\\) has {fields} fields, the header 2'):
        read_table(path, 'text', 'label')


def test_a_quoted_csv_field_may_hold_commas_and_newlines(tmp_path):
    path = tmp_path / 'quoted.csv'
    path.write_text('text,label\n"좋다, 정말\n좋다",1\n"나쁘다",0\n', encoding='utf-8')
    frame = read_table(path, 'text', 'label')
    assert list(frame['text']) == ['좋다, 정말\n좋다', '나쁘다'] and list(frame['label']) == ['1', '0']


def test_the_encoding_error_says_how_to_fix_it_from_the_cli(tmp_path):
    path = tmp_path / 'latin.tsv'
    path.write_bytes(b'text\tlabel\n\xff\xfe\xfa\t1\n')
    with pytest.raises(DataError) as caught:
        read_table(path, 'text', 'label')
    assert 'encoding=' not in str(caught.value) and 're-save it as UTF-8' in str(caught.value)


# ---------------------------------------------------------------------------- 5. settings

def test_a_split_that_leaves_almost_nothing_to_train_on_is_an_error(tmp_path, small_data, tiny):
    with pytest.raises(DataError, match='only 1 of 96 usable rows are left for training.*test_size=0.99'):
        train(run_config(tmp_path, small_data, 'run', test_size=0.99))


@pytest.mark.parametrize('change, match', [
    (dict(seed=-1), 'seed=-1: must be in'), (dict(seed=2 ** 32), 'seed=4294967296'),
    (dict(learning_rate=1e308), 'learning_rate=1e\\+308: must be in'),
])
def test_seed_and_learning_rate_ranges_are_checked_before_any_work(tmp_path, small_data, capsys, change, match):
    with pytest.raises(ConfigError, match=match):
        train(run_config(tmp_path, small_data, 'never', **change))
    with pytest.raises(ConfigError, match=match):
        pretrain.pretrain(pretrain_config(tmp_path, 'never', **change))
    assert not (tmp_path / 'never').exists()
    flag, value = next(iter(change.items()))
    assert match.split(':')[0].replace('\\', '') in cli_error(capsys, 'train', '--data', small_data, f'--{flag}',
                                                               value, '--output_dir', tmp_path / 'never')
    assert not (tmp_path / 'never').exists()


def test_pretraining_resume_on_another_corpus_is_refused_unless_allowed(tmp_path, caplog):
    pretrain.pretrain(pretrain_config(tmp_path, 'run', num_steps=2))
    other = tmp_path / 'other.txt'
    other.write_text('\n'.join(demo_frame(200)['text'][::-1]) + '\n', encoding='utf-8')
    with pytest.raises(CheckpointError, match='not the corpus this run was started with.*--allow_corpus_change'):
        pretrain.pretrain(pretrain_config(tmp_path, 'run', num_steps=4, corpus=str(other), resume=True))
    with caplog.at_level('WARNING'):
        pretrain.pretrain(pretrain_config(tmp_path, 'run', num_steps=4, corpus=str(other), resume=True,
                                          allow_corpus_change=True))
    assert '--allow_corpus_change' in caplog.text
    assert json.loads((tmp_path / 'run' / 'pretrain.json').read_text())['steps'] == 4


# ---------------------------------------------------------------------------- 6. full disks

@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / 'disk'
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip('cannot mount a small tmpfs here (needs root)')
    yield mount
    subprocess.run(['umount', '-l', str(mount)], check=False)


def fill(directory, leave=64 * 1024):
    free = shutil.disk_usage(directory).free
    with open(os.path.join(directory, 'filler'), 'wb') as out:
        out.write(b'\0' * max(free - leave, 0))


def test_a_full_disk_names_the_file_and_keeps_what_was_written(demo_model_dir, small_disk, capsys):
    classifier = TextClassifier.load(demo_model_dir)
    target = small_disk / 'model'
    classifier.save(target)
    before = (target / 'model.params').read_bytes()
    fill(small_disk)
    with pytest.raises(fileio.StorageError) as caught:
        classifier.save(target)
    assert 'No space left on device' in str(caught.value) and str(target) in str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert (target / 'model.params').read_bytes() == before
    TextClassifier.load(target)
    line = cli_error(capsys, 'export', '--model', demo_model_dir, '--output', small_disk / 'export')
    assert 'No space left on device' in line and 'export' in line
    with pytest.raises(fileio.StorageError, match='labels.json: cannot write \\(No space left on device\\)'):
        fileio.write_json(small_disk / 'labels.json', {'x': 'y' * 200_000})


def test_an_mxnet_write_failure_becomes_a_storage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, '_guess_errno', lambda directory: errno.ENOSPC)

    def failing_save(path, arrays):
        raise mx.base.MXNetError('[12:00:00] src/io/local_filesys.cc:209: FileStream.Write incomplete')
    monkeypatch.setattr(mx.nd, 'save', failing_save)
    from kobert_gluon.models.params import save_bert_params
    model = mx.gluon.nn.Dense(2, in_units=2)
    model.initialize()
    with pytest.raises(fileio.StorageError, match='bert.params: cannot write \\(No space left on device\\)'):
        save_bert_params(model, str(tmp_path / 'bert.params'))
    assert os.listdir(tmp_path) == []


def test_a_read_only_folder_is_a_storage_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(fileio.tempfile, 'mkstemp', refuse)
    with pytest.raises(fileio.StorageError, match='x.json: cannot write \\(Read-only file system\\)'):
        fileio.write_json(tmp_path / 'x.json', {})


# ---------------------------------------------------------------------------- 7. long lines

def test_pretraining_on_a_corpus_with_a_50_mb_line_stays_bounded(tmp_path):
    import resource
    corpus = tmp_path / 'long.txt'
    sentence = '\n'.join(demo_frame(200)['text']) + '\n'
    with open(corpus, 'w', encoding='utf-8') as out:
        out.write(sentence)
        out.write('가나다라 ' * (50 * 2 ** 20 // 13))  # about 50 MB without a newline
        out.write('\n' + sentence)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pretrain.pretrain(pretrain_config(tmp_path, 'run', corpus=str(corpus), num_steps=3, tokenizer_sentences=400))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 150, grown_mb
    assert json.loads((tmp_path / 'run' / 'pretrain.json').read_text())['steps'] == 3


# ---------------------------------------------------------------------------- 8. convert

def _hf_with(demo_model_dir, tmp_path, change_config=None, change_meta=None):
    hf = convert.to_transformers(demo_model_dir, tmp_path / 'hf')
    for name, change in (('config.json', change_config), ('kobert_gluon.json', change_meta)):
        if change:
            path = os.path.join(hf, name)
            data = json.loads(open(path, encoding='utf-8').read())
            change(data)
            with open(path, 'w', encoding='utf-8') as out:
                json.dump(data, out)
    return hf


@needs_convert
def test_a_gap_in_id2label_is_an_error_not_a_renamed_label(demo_model_dir, tmp_path):
    def gap(config):
        config['id2label'] = {'0': config['id2label']['0'], '2': 'b'}
    hf = _hf_with(demo_model_dir, tmp_path, change_config=gap)
    with pytest.raises(ConversionError, match='id2label has ids'):
        convert.from_transformers(hf, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()


@needs_convert
def test_a_recorded_max_len_beyond_the_positions_is_clamped_and_a_given_one_refused(demo_model_dir, tmp_path,
                                                                                     caplog):
    hf = _hf_with(demo_model_dir, tmp_path, change_meta=lambda meta: meta.update(max_len=10 ** 6))
    with caplog.at_level('WARNING'):
        classifier = convert.from_transformers(hf, tmp_path / 'out')
    assert classifier.max_len == classifier.bert_config.max_length and 'beyond the model' in caplog.text
    TextClassifier.load(tmp_path / 'out').predict(['좋다'])
    with pytest.raises(ConversionError, match='max_len=1000000'):
        convert.from_transformers(hf, tmp_path / 'out2', max_len=10 ** 6)


@pytest.mark.parametrize('field, value', [('units', '128'), ('num_layers', 1.5), ('dropout', 'x'), ('nope', 1)])
def test_bert_settings_of_a_model_directory_are_type_checked(demo_model_dir, tmp_path, capsys, field, value):
    model = copy_model(demo_model_dir, tmp_path / 'model')
    config = json.loads((model / 'config.json').read_text())
    config['bert'][field] = value
    (model / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match=f'{field}'):
        TextClassifier.load(model)
    assert field in cli_error(capsys, 'predict', '--model', model, '--text', '좋다')


def test_init_from_accepts_a_directory(tmp_path, small_data):
    from kobert_gluon.models.pretrained import fine_tuning_start

    folder = tmp_path / 'converted'
    folder.mkdir()
    (folder / 'bert.params').write_bytes(b'')
    assert fine_tuning_start(str(folder)) == (str(folder / 'bert.params'), None)
    hf = tmp_path / 'hf'
    hf.mkdir()
    assert fine_tuning_start(str(hf)) == (str(hf), None)
    run_config(tmp_path, small_data, 'x', init_from=str(hf)).validate()
    with pytest.raises(ConfigError, match='init_from=.*no such file or directory'):
        run_config(tmp_path, small_data, 'x', init_from=str(tmp_path / 'missing')).validate()
