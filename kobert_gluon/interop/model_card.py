"""The ``README.md`` model card of a ``--to-transformers`` folder.

It says what a reader of the folder on its own needs: the labels, the weights it started
from, the data and recipe it was trained with (the model directory's ``config.json``
``training`` record and, for a run's ``best/`` or ``last/``, the run folder's
``train_config.json`` and ``test_report.json``), the test report, and how it was converted
and checked. Nothing here imports mxnet.
"""
import json
import os

from .._version import __version__
from ..fileio import read_json

MODEL_CARD_FILE = 'README.md'
RUN_CONFIG_FILE = 'train_config.json'  # train/checkpoint.TRAIN_CONFIG_FILE (train/ is above interop/)
TEST_REPORT_FILE = 'test_report.json'  # train/finetune.TEST_REPORT
DATA_KEYS = ('data', 'text_column', 'label_column', 'test_data', 'test_size', 'valid_data', 'valid_size')
RECIPE_KEYS = ('bert', 'init_from', 'max_len', 'batch_size', 'accumulate', 'num_epochs', 'learning_rate',
               'warmup_ratio', 'weight_decay', 'dropout', 'seed', 'dtype', 'select_metric', 'early_stopping')
# the fine-tuning recipe of TrainConfig when --init_from is not given
DEFAULT_BASE = {'kobert': "SKT Brain's KoBERT (mxnet_kobert_45b6957552.params, 12 x 768)",
                'small': 'none: a 2-layer BERT trained from scratch', 'auto': "SKT Brain's KoBERT (--bert auto)"}


def run_record(source_dir):
    """``(train_config, test_report)`` of the run ``source_dir`` belongs to (``None`` for each absent).

    ``source_dir`` is the run folder itself, or a model directory that is a run's ``best/`` or
    ``last/`` (they are one folder up); a checkpoint keeps its own ``train_config.json``.
    """
    if not source_dir:
        return None, None
    source_dir = os.path.abspath(os.fspath(source_dir))
    candidates = [source_dir, os.path.dirname(source_dir)]
    return _first_json(candidates, RUN_CONFIG_FILE), _first_json(candidates, TEST_REPORT_FILE)


def _first_json(folders, name):
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                return read_json(path)
            except (OSError, ValueError):
                return None
    return None


def classifier_card(labels, hf_config, training=None, train_config=None, test_report=None, source=None,
                    max_len=None, tokenizer_files=None, task=None, pair=False):
    """The model card of a converted classifier folder (``task``: the kobert_gluon Task)."""
    architecture = hf_config['architectures'][0]
    problem = f' (`problem_type` {hf_config["problem_type"]!r})' if hf_config.get('problem_type') else ''
    lines = [f'# {os.path.basename(str(source)).rstrip("/") or "KoBERT classifier"} (KoBERT, converted from kobert_gluon)',
             '', f'A `{architecture}`{problem} fine-tuned with [kobert_gluon](https://pypi.org/project/kobert-gluon/) '
             f'(MXNet / GluonNLP) and converted to transformers{"; it reads sentence pairs" if pair else ""}.', '',
             '## Labels', '', '| id | label |', '|---:|---|']
    lines += [f'| {i} | {_cell(name)} |' for i, name in enumerate(labels)]
    lines += ['', '## Base weights', '', _base_weights(train_config), '']
    lines += _section('Training data', _pick(train_config, DATA_KEYS))
    lines += _section('Training recipe', _pick(train_config, RECIPE_KEYS))
    lines += _section('Training record (config.json)', training or {})
    lines += _test_section(test_report, task)
    lines += _usage_section(hf_config, max_len, task, pair)
    lines += _conversion_section(source, tokenizer_files)
    return '\n'.join(lines) + '\n'


def bert_card(hf_config, source=None, tokenizer_files=None):
    """The model card of a converted plain ``BertModel`` folder."""
    lines = ['# KoBERT BertModel (converted from kobert_gluon)', '',
             f'A plain `BertModel` ({hf_config.get("num_hidden_layers")} layers x {hf_config.get("hidden_size")}, '
             f'vocabulary {hf_config.get("vocab_size")}) converted from a gluonnlp params file in the '
             '`bert_12_768_12` layout. Its MLM and NSP pre-training heads are left out.', '']
    lines += _conversion_section(source, tokenizer_files)
    return '\n'.join(lines) + '\n'


def _base_weights(train_config):
    if not train_config:
        return 'Not recorded (the model directory was not inside a kobert_gluon run folder).'
    if train_config.get('init_from'):
        return f'`{train_config["init_from"]}` (--init_from)'
    return DEFAULT_BASE.get(train_config.get('bert'), f'--bert {train_config.get("bert")!r}')


def _pick(record, keys):
    if not record:
        return {}
    return {key: record[key] for key in keys if key in record}


def _section(title, record):
    if not record:
        return [f'## {title}', '', 'Not recorded.', '']
    return [f'## {title}', '', '| setting | value |', '|---|---|'] + [
        f'| {_cell(key)} | {_cell(_value(value))} |' for key, value in record.items()] + ['']


def _test_section(report, task):
    if not report:
        return ['## Test report', '', 'Not recorded (no test_report.json beside the model directory).', '']
    lines = ['## Test report', '', report.get('evaluated', ''), '']
    metrics = task.summary_metrics if task is not None else ('accuracy', 'macro_f1')
    lines += [f'- {key}: {_value(report[key])}' for key in ('test_rows', *metrics, 'selected_epoch',
                                                             'select_metric', 'validation_value') if key in report]
    lines += ['', '<details><summary>test_report.json</summary>', '', '```json',
              json.dumps(report, ensure_ascii=False, indent=2), '```', '', '</details>', '']
    return lines


def _usage_section(hf_config, max_len, task=None, pair=False):
    function = f", function_to_apply='{task.hf_function}'" if task is not None and task.hf_function != 'softmax' else ''
    example = ("{'text': '한 남자가 기타를 친다', 'text_pair': '남자가 악기를 연주한다'}" if pair
               else "'경찰은 또 박씨의 딸(32)을 입건했다.'" if task is not None and task.per_piece
               else "'정말 재미있는 영화였어요'")
    arguments = task.hf_pipeline_arguments if task is not None else 'top_k=None, truncation=True'
    return ['## Use', '', '```python', 'from transformers import pipeline', '',
            f"classifier = pipeline('{task.hf_pipeline if task is not None else 'text-classification'}', "
            f"model='THIS_FOLDER', {arguments}{function})",
            f"print(classifier({example}))", '```', '',
            f'`tokenizer.json` reproduces kobert_gluon\'s tokenization (gluonnlp `BERTSPTokenizer` on the '
            f'SentencePiece model in `tokenizer/`), `[CLS] ... [SEP]` cut to {max_len} tokens '
            f'(`model_max_length`), so the ids are the ones the model was trained with. Do not replace it with '
            f'a WordPiece tokenizer built from `vocab.txt`.', '']


def _conversion_section(source, tokenizer_files):
    files = ', '.join(f'`{os.path.basename(path)}`' for path in (tokenizer_files or {}).values()) or 'none'
    return ['## Conversion', '',
            f'- converted by kobert_gluon {__version__}: `kobert-gluon convert --to-transformers '
            f'{_cell(os.fspath(source)) if source else "MODEL"} --output THIS_FOLDER`',
            '- weights: renamed tensor by tensor (gluonnlp and transformers compute the same function: erf GELU, '
            'LayerNorm epsilon 1e-12, tanh pooler); `kobert-gluon convert --from-transformers` reads the folder '
            'back bit-exact',
            f'- tokenizer files: {files}; `tokenizer.json` was checked id for id against kobert_gluon on '
            'its probe texts (full-width forms, accents, emoji, URLs, quotes, tabs, very long text) before the '
            'folder was written', '- `kobert_gluon.json`: max_len, dropout and the tokenizer md5s', '']


def _value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')
