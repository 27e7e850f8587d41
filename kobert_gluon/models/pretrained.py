"""A pretraining result as fine-tuning reads it: ``bert.params`` + ``tokenizer/`` + ``pretrain.json``.

``kobert-gluon pretrain`` writes such a directory (:mod:`kobert_gluon.training.pretrain`); the
package can ship one in ``resources/pretrained/``, which the demo (no --data) starts from.
"""
import os

from .. import arguments as _arg
from .. import assets
from ..errors import ConfigError
from ..fileio import file_inside, package_file, read_json
from ..text.tokenizer import get_bert_tokenizer, get_vocab
from ..text.vocab import TOKENIZER_DIR

PARAMS_FILE = 'bert.params'
RECORD_FILE = 'pretrain.json'
RECORD_FORMAT = 'kobert_gluon.pretrained_bert'
SHIPPED_DIR = ('resources', 'pretrained')


def shipped_params():
    return package_file(*SHIPPED_DIR, PARAMS_FILE)


def fine_tuning_start(init_from, shipped=False):
    """(params file or None, its pretrain record or None) that fine-tuning starts from.

    ``'none'`` means random weights. Without ``init_from``, ``shipped`` runs (the demo, and every
    ``--bert small`` run) start from the checkpoint shipped in the package; others from nothing
    here (KoBERT's file is found by the caller).
    """
    if init_from == 'none' or (init_from is None and not shipped):
        return None, None
    path = init_from or shipped_params()
    if init_from is None and not (os.path.isfile(path) and assets.packaged_files_enabled()):
        return None, None
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, PARAMS_FILE)):
        path = os.path.join(path, PARAMS_FILE)  # a pretrain result or converted BERT folder (a transformers one loads as is)
    if not os.path.exists(path):
        raise ConfigError(f'init_from={path}: no such file or directory')
    return path, read_record(path) if os.path.isfile(path) else None


def describe_start(params_path, record, init_from=None, kobert=False):
    """Which weights a fine-tuning run starts from, and from where, in words for its log."""
    if params_path is None:
        if init_from == 'none':
            return 'random weights (--init_from none: no pretrained weights, on purpose)'
        return 'random weights (no pretrained checkpoint of this size is shipped or given)'
    if kobert and not init_from:
        return f"KoBERT's pretrained weights ({params_path})"
    if record and os.path.abspath(params_path) == os.path.abspath(shipped_params()):
        return f'the pretrained checkpoint shipped in the package ({params_path})'
    if record:
        return (f"a kobert-gluon pretraining result ({params_path}: {record.get('steps')} steps on "
                f"{record.get('corpus', {}).get('file')})")
    return f'{params_path} (--init_from)'


def read_record(params_path):
    """The pretrain.json beside a bert.params (md5s checked), or None when there is none."""
    params_path = _arg.path('read_record', 'params_path', params_path)
    directory = os.path.dirname(os.path.abspath(params_path))
    path = os.path.join(directory, RECORD_FILE)
    if os.path.basename(params_path) != PARAMS_FILE or not os.path.isfile(path):
        return None
    record = read_json(path)
    if record.get('format') != RECORD_FORMAT:
        raise ConfigError(f'{path}: not a {RECORD_FORMAT} record')
    for role, file in (('params', params_path), ('tokenizer', record_tokenizer_path(params_path, record))):
        if not os.path.isfile(file):
            raise ConfigError(f'{path}: names {file}, which is missing')
        if assets.md5sum(file) != record[role]['md5']:
            raise ConfigError(f'{file}: md5 differs from the one in {path}')
    return record


def record_tokenizer_path(params_path, record):
    params_path = _arg.path('record_tokenizer_path', 'params_path', params_path)
    _arg.instance('record_tokenizer_path', 'record', record, dict, 'a dict (read_record)')
    directory = os.path.dirname(os.path.abspath(params_path))
    return file_inside(directory, TOKENIZER_DIR, record['tokenizer']['file'], ConfigError,
                       os.path.join(directory, RECORD_FILE))


def record_tokenizer(params_path, record):
    """(tokenizer, vocab, files) of a pretrain result, as load_tokenizer returns them."""
    path = record_tokenizer_path(params_path, record)
    vocab = get_vocab(path)
    return get_bert_tokenizer(path, vocab), vocab, {'tokenizer': path}
