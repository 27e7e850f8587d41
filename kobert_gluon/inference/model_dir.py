"""A fine-tuned classifier on disk: the model directory's files and how each is checked.

Layout of a model directory::

    config.json     library version, BERT size, max_len, dropout, labels, tokenizer md5s
    model.params    BERTClassifier parameters
    tokenizer/      the SentencePiece model (and v0.1 vocab json) it was trained with

The tokenizer files are copied (they are small), so a directory works on any machine. Every
file a directory names must stay inside it.
"""
import os
import shutil

from ..assets import md5sum
from ..errors import ConfigError, ModelDirectoryError, last_line
from ..fileio import atomic_directory, file_inside, read_json, write_json
from ..models.config import BertConfig
from ..models.params import ParamsFileError, load_params
from ..text.data import check_max_len
from ..text.vocab import TOKENIZER_DIR

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
    if not isinstance(config['labels'], dict) or not isinstance(config['num_classes'], int):
        raise ModelDirectoryError(f"{path}: 'labels' must map label names to ids and 'num_classes' be an integer")
    if len(config['labels']) != config['num_classes']:
        raise ModelDirectoryError(f"{path}: {len(config['labels'])} labels but num_classes={config['num_classes']}")
    ids = sorted(config['labels'].values(), key=str)
    if ids != list(range(len(ids))):
        shared = sorted({str(i) for i in ids if ids.count(i) > 1})
        detail = f'labels share id(s) {shared}' if shared else f'label ids are {ids}'
        raise ModelDirectoryError(f'{path}: {detail}; expected each of 0..{len(ids) - 1} exactly once')
    dropout = config['dropout']
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ModelDirectoryError(f'{path}: dropout={dropout!r} must be in [0, 1)')
    return config


def read_bert_config(directory, config):
    try:
        return BertConfig(**config['bert'])
    except (TypeError, ValueError) as error:
        raise ModelDirectoryError(f"{os.path.join(directory, MODEL_CONFIG_FILE)}: bad 'bert' settings ({error})") from error


def load_weights(model, directory, ctx):
    params = os.path.join(directory, PARAMS_FILE)
    if not os.path.isfile(params):
        raise ModelDirectoryError(f'{directory}: missing {PARAMS_FILE}')
    try:
        load_params(model, params, ctx)
    except ParamsFileError as error:  # mxnet could not even parse it (truncated, or not a params file)
        raise ModelDirectoryError(f'{params}: corrupt or not an MXNet parameters file '
                                  f'({last_line(error.__cause__)})') from error
    except ValueError as error:
        raise ModelDirectoryError(f'{directory}: {PARAMS_FILE} does not match {MODEL_CONFIG_FILE}: {error}') from error


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
    return files


def check_config_max_len(directory, config, bert_config):
    try:
        check_max_len(config['max_len'], bert_config.max_length, os.path.join(directory, MODEL_CONFIG_FILE))
    except ConfigError as error:
        raise ModelDirectoryError(str(error)) from None


def write_model_dir(directory, model, tokenizer_files, config):
    """Write the model directory atomically (readers never see half of one)."""
    with atomic_directory(directory) as tmp:
        os.makedirs(os.path.join(tmp, TOKENIZER_DIR))
        for path in tokenizer_files.values():
            shutil.copyfile(path, os.path.join(tmp, TOKENIZER_DIR, os.path.basename(path)))
        model.save_parameters(os.path.join(tmp, PARAMS_FILE))
        write_json(os.path.join(tmp, MODEL_CONFIG_FILE), config)
