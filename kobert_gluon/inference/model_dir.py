"""A fine-tuned classifier on disk: the model directory's files and how each is checked.

Layout of a model directory::

    config.json     library version, task (and its settings, whether it reads sentence pairs),
                    BERT size, max_len, dropout, labels, tokenizer md5s
    model.params    the model's parameters (BERTClassifier for the sequence tasks)
    tokenizer/      the SentencePiece model (and v0.1 vocab json) it was trained with

The tokenizer files are copied (they are small), so a directory works on any machine. Every
file a directory names must stay inside it, symlinks followed. config.json records each file's
size and sha256 (``files``), checked on load; NaN or Inf weights are neither saved nor loaded.
"""
import numbers
import os
import shutil

from ..assets import md5sum
from ..errors import ConfigError, ModelDirectoryError, last_line
from ..fileio import atomic_directory, file_inside, plain_file_inside, read_json, sha256sum, storage_errors, write_json
from ..models.config import BertConfig
from ..models.params import ParamsFileError, load_params, named_parameters, nonfinite_parameter
from ..tasks import registry
from ..text.data import check_max_len
from ..text.vocab import TOKENIZER_DIR
from .model_checks import check_num_classes, check_tokenizer_roles

MODEL_CONFIG_FILE = 'config.json'
PARAMS_FILE = 'model.params'


def read_config(directory):
    path = os.path.join(directory, MODEL_CONFIG_FILE)
    if not os.path.isdir(directory):
        raise ModelDirectoryError(f'{directory}: not a model directory (it does not exist)')
    if not os.path.isfile(path):
        raise ModelDirectoryError(f'{directory}: missing {MODEL_CONFIG_FILE}; is this a kobert_gluon model directory?')
    try:
        config = read_json(path)
    except ValueError as error:
        raise ModelDirectoryError(f'{path}: not valid JSON ({error})') from error
    if not isinstance(config, dict):
        raise ModelDirectoryError(f'{path}: expected a JSON object')
    missing = [k for k in ('bert', 'max_len', 'num_classes', 'labels', 'tokenizer', 'dropout') if k not in config]
    if missing:
        raise ModelDirectoryError(f'{path}: missing keys {missing}')
    if not isinstance(config['labels'], dict):
        raise ModelDirectoryError(f"{path}: 'labels' must map label names to ids")
    check_num_classes(path, config)
    if len(config['labels']) != config['num_classes']:
        raise ModelDirectoryError(f"{path}: {len(config['labels'])} labels but num_classes={config['num_classes']}")
    ids = list(config['labels'].values())
    # numbers in numeric order (10 after 9, not after 1); anything else compared as text
    ids = sorted(ids) if all(type(i) is int for i in ids) else sorted(ids, key=str)
    if ids != list(range(len(ids))):
        shared = sorted({str(i) for i in ids if ids.count(i) > 1})
        detail = f'labels share id(s) {shared}' if shared else f'label ids are {ids}'
        raise ModelDirectoryError(f'{path}: {detail}; expected each of 0..{len(ids) - 1} exactly once')
    dropout = config['dropout']
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ModelDirectoryError(f'{path}: dropout={dropout!r} must be in [0, 1)')
    return config


def read_task(directory, config):
    """``(task, task settings, pair)`` of a model directory. Directories of versions before 0.8
    record none of them: a classifier of single sentences."""
    path = os.path.join(directory, MODEL_CONFIG_FILE)
    try:
        task = registry.get(config.get('task'), where=f'{path}: task')
        settings = config.get('task_settings') or {}
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: 'task_settings' must be an object, got {type(settings).__name__}")
        settings = task.check_settings(settings, f'{path}: task_settings')
    except ConfigError as error:
        raise ModelDirectoryError(str(error)) from None
    pair = config.get('pair', False)
    if not isinstance(pair, bool):
        raise ModelDirectoryError(f"{path}: 'pair' must be true or false, got {pair!r}")
    return task, settings, pair


# BertConfig's fields and the type each must have in config.json.
BERT_FIELD_TYPES = {'num_layers': int, 'units': int, 'hidden_size': int, 'num_heads': int, 'max_length': int,
                    'dropout': float, 'vocab_size': int, 'token_type_vocab_size': int}


def read_bert_config(directory, config):
    path = os.path.join(directory, MODEL_CONFIG_FILE)
    settings = config['bert']
    if not isinstance(settings, dict):
        raise ModelDirectoryError(f"{path}: 'bert' must be an object of BERT settings")
    for name, value in settings.items():
        expected = BERT_FIELD_TYPES.get(name)
        if expected is None:
            raise ModelDirectoryError(f"{path}: unknown 'bert' setting {name!r}; known: {sorted(BERT_FIELD_TYPES)}")
        kinds = numbers.Real if expected is float else numbers.Integral
        if not isinstance(value, kinds) or isinstance(value, bool) or (expected is int and value < 1) \
                or (expected is float and not 0 <= value < 1):
            wanted = 'a number in [0, 1)' if expected is float else 'a positive integer'
            raise ModelDirectoryError(f"{path}: bert.{name}={value!r} must be {wanted}")
    try:
        return BertConfig(**settings)
    except (TypeError, ValueError) as error:
        raise ModelDirectoryError(f"{path}: bad 'bert' settings ({error})") from error


def load_weights(model, directory, ctx):
    """model.params into ``model``: inside the directory, as recorded (sha256), finite."""
    params = plain_file_inside(directory, PARAMS_FILE, ModelDirectoryError, 'the model directory')
    if not os.path.isfile(params):
        raise ModelDirectoryError(f'{directory}: missing {PARAMS_FILE}')
    check_recorded(directory, PARAMS_FILE)
    try:
        load_params(model, params, ctx)
    except ParamsFileError as error:  # mxnet could not even parse it (truncated, or not a params file)
        raise ModelDirectoryError(f'{params}: corrupt or not an MXNet parameters file '
                                  f'({last_line(error.__cause__)})') from error
    except ValueError as error:
        raise ModelDirectoryError(f'{directory}: {PARAMS_FILE} does not match {MODEL_CONFIG_FILE}: {error}') from error
    bad = nonfinite_parameter(named_parameters(model))
    if bad:
        raise ModelDirectoryError(f'{params}: parameter {bad} holds NaN or Inf values; refusing to use this model')


def check_recorded(directory, relative):
    """The size and sha256 config.json records for ``relative`` (directories of older versions
    record none) must match the file."""
    config_path = os.path.join(directory, MODEL_CONFIG_FILE)
    try:
        entry = (read_json(config_path).get('files') or {}).get(relative)
    except (OSError, ValueError, AttributeError):
        entry = None
    if not isinstance(entry, dict):
        return
    path = os.path.join(directory, relative)
    size = os.path.getsize(path)
    if size != entry.get('bytes'):
        raise ModelDirectoryError(f'{path}: truncated or corrupt ({size} bytes, {MODEL_CONFIG_FILE} records '
                                  f'{entry.get("bytes")}); refusing to load it')
    if sha256sum(path) != entry.get('sha256'):
        raise ModelDirectoryError(f'{path}: changed after it was written (corrupt: its sha256 differs from the one '
                                  f'in {MODEL_CONFIG_FILE}); refusing to load it')


def tokenizer_files(directory, config):
    files = {}
    entries = config['tokenizer']
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and isinstance(e.get('file'), str)
                                                and isinstance(e.get('md5'), str) for e in entries.values()):
        raise ModelDirectoryError(f"{os.path.join(directory, MODEL_CONFIG_FILE)}: 'tokenizer' must map roles to "
                                  "{'file': name, 'md5': hex}")
    for role, entry in entries.items():
        path = file_inside(directory, TOKENIZER_DIR, entry['file'], ModelDirectoryError,
                           os.path.join(directory, MODEL_CONFIG_FILE), 'the model directory')
        if not os.path.isfile(path):
            raise ModelDirectoryError(f'{directory}: missing tokenizer file {TOKENIZER_DIR}/{entry["file"]}')
        actual = md5sum(path)
        if actual != entry['md5']:
            raise ModelDirectoryError(f'{path}: md5 {actual} does not match {entry["md5"]} in {MODEL_CONFIG_FILE}')
        files[role] = path
    if 'tokenizer' not in files:
        raise ModelDirectoryError(f'{directory}: {MODEL_CONFIG_FILE} names no tokenizer file')
    check_tokenizer_roles(os.path.join(directory, MODEL_CONFIG_FILE), files)
    return files


def check_config_max_len(directory, config, bert_config):
    try:
        check_max_len(config['max_len'], bert_config.max_length, os.path.join(directory, MODEL_CONFIG_FILE))
    except ConfigError as error:
        raise ModelDirectoryError(str(error)) from None


def write_model_dir(directory, model, tokenizer_files, config):
    """Write the model directory atomically (readers never see half of one); config.json
    records every file's size and sha256. NaN or Inf weights are refused, nothing is written."""
    bad = nonfinite_parameter(named_parameters(model))
    if bad:
        raise ModelDirectoryError(f'{directory}: not saved: parameter {bad} holds NaN or Inf values '
                                  '(training diverged)')
    with atomic_directory(directory) as tmp:
        os.makedirs(os.path.join(tmp, TOKENIZER_DIR))
        for path in tokenizer_files.values():
            shutil.copyfile(path, os.path.join(tmp, TOKENIZER_DIR, os.path.basename(path)))
        with storage_errors(os.path.join(directory, PARAMS_FILE)):
            model.save_parameters(os.path.join(tmp, PARAMS_FILE))
        files = [PARAMS_FILE] + [f'{TOKENIZER_DIR}/{os.path.basename(path)}' for path in tokenizer_files.values()]
        recorded = {name: {'bytes': os.path.getsize(os.path.join(tmp, name)), 'sha256': sha256sum(os.path.join(tmp, name))}
                    for name in files}
        write_json(os.path.join(tmp, MODEL_CONFIG_FILE), {**config, 'files': recorded})
