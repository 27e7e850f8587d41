"""Export a fine-tuned classifier as a plain MXNet graph that a server loads without kobert_gluon.

Layout of an export directory::

    model-symbol.json   the hybridized BERTClassifier graph
    model-0000.params   its parameters
    export.json         input names/dtypes/roles, max_len, labels, special token ids, file names
    tokenizer/          the SentencePiece model the inputs must be made with, plus vocab.json

Loading needs nothing but mxnet::

    net = mx.gluon.SymbolBlock.imports('model-symbol.json', ['data0', 'data1', 'data2'],
                                       'model-0000.params')
    logits = net(token_ids, segment_ids, valid_length)   # int32 arrays

``data0`` are the token ids ``[CLS] pieces [SEP]`` (a pair: ``[CLS] A [SEP] B [SEP]``)
truncated to max_len and padded with the [PAD] id, ``data1`` the segment ids (0 for the first
sentence, 1 for a pair's second), ``data2`` the number of real tokens per row. The graph casts
``valid_length`` to float32 itself, so int32 inputs (what BERTDataset yields) and float32 inputs
both work; the output is float32 in label order: logits (classification; multi-label: apply a
sigmoid each, threshold in ``task_settings``) or the score (regression). ``export.json`` names
the ``task``.
"""
import logging
import os
import shutil
import warnings

import mxnet as mx
import numpy as np

from .. import arguments as _arg
from .._version import __version__
from ..assets import md5sum
from ..errors import ConfigError, ModelDirectoryError
from ..fileio import atomic_directory, owned_output, write_json
from ..text.vocab import TOKENIZER_DIR
from .classifier import TextClassifier

logger = logging.getLogger(__name__)

EXPORT_FILE = 'export.json'
VOCAB_FILE = 'vocab.json'
DEFAULT_NAME = 'model'
INPUTS = (('data0', 'token_ids'), ('data1', 'segment_ids'), ('data2', 'valid_length'))
INPUT_DTYPE = 'int32'
# Sentences of different lengths, so the traced batch has padding like real traffic.
SAMPLE_TEXTS = ('내보낸 모델이 같은 값을 내는지 확인하는 문장입니다.', '짧은 문장', '')
# The re-imported graph is checked against the live model; this only catches a wrong graph,
# so it allows for GPU-vs-CPU arithmetic as well.
VERIFY_TOLERANCE = 1e-4


def input_names():
    return [name for name, _ in INPUTS]


def export(classifier_or_model_dir, output_dir, name=DEFAULT_NAME, ctx=None, overwrite=False):
    """Write ``output_dir`` (atomically) and return the paths of what it holds.

    ``classifier_or_model_dir`` is a :class:`TextClassifier` or a model directory (loaded on
    ``ctx``, default CPU). An existing ``output_dir`` is replaced only when it is empty or a
    previous export, so a mistyped path cannot wipe unrelated files; a model or other output
    export did not write only with ``overwrite``, and then only its model files
    (fileio.owned_output). The classifier's model is left hybridized (exporting needs a traced graph).
    """
    _arg.model_or_dir('export', 'classifier_or_model_dir', classifier_or_model_dir)
    _arg.path('export', 'output_dir', output_dir)
    _arg.text('export', 'name', name)
    _arg.flag('export', 'overwrite', overwrite)
    _check_name(name)
    output_dir = os.path.abspath(os.fspath(output_dir))
    with owned_output(output_dir, 'export', overwrite, ConfigError):
        classifier = _as_classifier(classifier_or_model_dir, ctx)
        return _export(classifier_or_model_dir, classifier, output_dir, name)


def _export(classifier_or_model_dir, classifier, output_dir, name):
    inputs = sample_inputs(classifier)
    expected = _trace(classifier.model, inputs, classifier.ctx)
    with atomic_directory(output_dir) as tmp:
        classifier.model.export(os.path.join(tmp, name))
        tokenizer_files = _write_tokenizer(classifier, tmp)
        write_json(os.path.join(tmp, EXPORT_FILE), manifest(classifier, name, tokenizer_files))
        _verify(tmp, name, inputs, expected)
    paths = _paths(output_dir, name, tokenizer_files)
    logger.info('exported %s to %s', _describe(classifier_or_model_dir), output_dir)
    return paths


def sample_inputs(classifier, texts=SAMPLE_TEXTS):
    """The model's inputs (token_ids, segment_ids, valid_length: int32 numpy arrays) for ``texts``,
    as predict builds them; a pair model gets each text paired with the next."""
    texts = list(texts)
    if classifier.pair:
        texts = list(zip(texts, texts[1:] + texts[:1]))
    return next(classifier.batches(classifier.encode(texts), batch_size=len(texts)))


def manifest(classifier, name, tokenizer_files):
    vocab = classifier.tokenizer.vocab
    return {
        'format': 'kobert_gluon.export', 'format_version': 1, 'library_version': __version__,
        'symbol': f'{name}-symbol.json', 'params': f'{name}-0000.params',
        'inputs': [{'name': input_name, 'role': role, 'dtype': INPUT_DTYPE,
                    'shape': ['batch', 'length'] if role != 'valid_length' else ['batch']}
                   for input_name, role in INPUTS],
        'output': {'role': 'logits', 'dtype': 'float32', 'shape': output_shape(classifier)},
        'max_len': classifier.max_len,
        'task': classifier.task.name, 'task_settings': classifier.task_settings, 'pair': classifier.pair,
        'labels': classifier.label_map.names,
        'special_tokens': {token: vocab[token] for token in (vocab.cls_token, vocab.sep_token,
                                                             vocab.padding_token, vocab.unknown_token)},
        'tokenizer': tokenizer_files,
        'bert': classifier.bert_config.to_dict(),
    }


def output_shape(classifier):
    """The logits' axes: a row per input, or (token classification) per input and position."""
    return ['batch'] + (['length'] if classifier.task.per_piece else []) + [classifier.num_classes]


def real_positions(outputs, classifier, valid_length):
    """The outputs compared between two runtimes: all of them, or of a tagger the positions
    before each row's valid_length (padding's outputs mean nothing, and attention masks treat
    padded queries differently in gluonnlp and transformers)."""
    outputs = np.asarray(outputs)
    if not classifier.task.per_piece:
        return outputs
    return np.concatenate([row[:int(length)] for row, length in zip(outputs, valid_length)])


def _as_classifier(classifier_or_model_dir, ctx):
    if isinstance(classifier_or_model_dir, TextClassifier):
        return classifier_or_model_dir
    return TextClassifier.load(classifier_or_model_dir, ctx=ctx)


def _describe(classifier_or_model_dir):
    if isinstance(classifier_or_model_dir, TextClassifier):
        return 'the classifier'
    return os.fspath(classifier_or_model_dir)


def _check_name(name):
    if not name or name in ('.', '..') or os.sep in name or (os.altsep and os.altsep in name):
        raise ConfigError(f'export name {name!r}: must be a plain file name prefix such as {DEFAULT_NAME!r}')


def _trace(model, inputs, ctx):
    """One forward pass of the hybridized model, which export() needs; returns its logits."""
    model.hybridize(static_alloc=True)
    return model(*(mx.nd.array(array, ctx=ctx, dtype=INPUT_DTYPE) for array in inputs)).asnumpy()


def _write_tokenizer(classifier, directory):
    """Copy the tokenizer files and write vocab.json; returns role -> relative path and md5."""
    os.makedirs(os.path.join(directory, TOKENIZER_DIR))
    files = {}
    for role, path in classifier.tokenizer_files.items():
        relative = f'{TOKENIZER_DIR}/{os.path.basename(path)}'
        shutil.copyfile(path, os.path.join(directory, relative))
        files[role] = relative
    if 'vocab_json' not in files:
        # Servers without gluonnlp need the piece -> id table it builds from the .spiece file.
        files['vocab_json'] = f'{TOKENIZER_DIR}/{VOCAB_FILE}'
        with open(os.path.join(directory, files['vocab_json']), 'w', encoding='utf-8') as out:
            out.write(classifier.tokenizer.vocab.to_json())
    return {role: {'file': relative, 'md5': md5sum(os.path.join(directory, relative))}
            for role, relative in files.items()}


def _verify(directory, name, inputs, expected):
    """Re-import the files exactly as a server would and compare with the live model."""
    with warnings.catch_warnings():
        # SymbolBlock cannot know the input dtypes before the first call and says so.
        warnings.filterwarnings('ignore', message='Cannot decide type')
        net = mx.gluon.SymbolBlock.imports(os.path.join(directory, f'{name}-symbol.json'), input_names(),
                                           os.path.join(directory, f'{name}-0000.params'))
    actual = net(*(mx.nd.array(array, dtype=INPUT_DTYPE) for array in inputs)).asnumpy()
    if not np.allclose(actual, expected, atol=VERIFY_TOLERANCE, rtol=VERIFY_TOLERANCE):
        raise ModelDirectoryError(f'the exported graph gives different logits (max difference '
                           f'{np.abs(actual - expected).max():.3g}); nothing was written')


def _paths(output_dir, name, tokenizer_files):
    paths = {'directory': output_dir,
             'symbol': os.path.join(output_dir, f'{name}-symbol.json'),
             'params': os.path.join(output_dir, f'{name}-0000.params'),
             'manifest': os.path.join(output_dir, EXPORT_FILE)}
    paths.update({role: os.path.join(output_dir, entry['file']) for role, entry in tokenizer_files.items()})
    return paths
