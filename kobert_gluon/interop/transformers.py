"""KoBERT checkpoints between transformers (PyTorch) and gluonnlp's BERT, both ways.

A transformers directory holds ``config.json`` and ``model.safetensors`` (or
``pytorch_model.bin``) of a ``BertModel`` or ``BertForSequenceClassification``. Ours is
gluonnlp's ``BERTModel`` in the ``bert_12_768_12`` layout, or a ``BERTClassifier`` model
directory (pipeline.py). The two networks compute the same function (erf GELU, LayerNorm
epsilon 1e-12, post-LN blocks, tanh pooler on [CLS]); only tensor names differ, and every
weight keeps its orientation, so conversion is a renaming and outputs agree to float32 rounding.

Reading is safe: safetensors through the ``safetensors`` package (numpy, no torch), ``.bin``
only through ``torch.load(weights_only=True)``, so a checkpoint cannot run code.

What :func:`to_transformers` writes::

    config.json          transformers BertConfig (id2label/label2id for a classifier)
    model.safetensors    float32 tensors under transformers' names
    vocab.txt            our vocab, one token a line, line number = id
    tokenizer.json       our tokenization for transformers (hf_tokenizer.py), checked id for id
    tokenizer_config.json, special_tokens_map.json   so AutoTokenizer and pipeline() load it
    tokenizer/           our SentencePiece file(s), names kept
    kobert_gluon.json    max_len, dropout, tokenizer md5s: what from_transformers restores
    README.md            the model card (model_card.py): labels, training record, test report

transformers' own KoBERT tokenizer (an XLNetTokenizer) splits punctuation differently from
gluonnlp's BERTSPTokenizer; the tokenizer.json written here does not, and the folder is
refused rather than written when it would give other ids on any probe text.
"""
import contextlib
import logging
import os
import shutil

import numpy as np

from .. import arguments as _arg
from ..extras import require_extra
from .._version import __version__
from ..assets import md5sum
from ..errors import ConversionError
from ..fileio import atomic_directory, owned_output, read_json, write_json
from ..models.hf_weights import (HF_CONFIG_FILE, SAFETENSORS_FILE, assign, bert_name_pairs, classifier_name_pairs,
                                 hf_config, infer_bert_config, listing, read_tensors,
                                 read_transformers_config, require, with_bert_prefix)
from ..models.params import named_parameters, nonfinite_parameter
from ..text.data import check_max_len
from ..text.token_ids import META_FILE, VOCAB_TXT, read_meta, recorded_file
from ..text.vocab import TOKENIZER_DIR

logger = logging.getLogger(__name__)

BERT_PARAMS_FILE = 'bert.params'
BERT_CONFIG_FILE = 'bert_config.json'
DEFAULT_MAX_LEN = 64


# ---------------------------------------------------------------------------- names


def check_output_dir(output_dir, overwrite=False):
    """ConversionError unless ``output_dir`` may receive a converted folder (fileio.owned_output)."""
    if output_dir is not None:
        with owned_output(output_dir, 'convert', overwrite, ConversionError):
            pass


def _owned(output_dir, overwrite):
    return owned_output(output_dir, 'convert', overwrite, ConversionError) if output_dir is not None \
        else contextlib.nullcontext()


def _check_finite(tensors, source):
    bad = nonfinite_parameter(tensors)
    if bad:
        raise ConversionError(f'{source}: tensor {bad} holds NaN or Inf values; refusing to convert it')


# ---------------------------------------------------------------------------- reading


# ---------------------------------------------------------------------------- transformers -> gluon


def from_transformers(src_dir, output_dir=None, tokenizer=None, vocab_json=None, max_len=None, kobert_dir=None,
                      ctx=None, overwrite=False, pair=None):
    """Convert a transformers BERT directory; returns a TextClassifier or a gluonnlp BERTModel.

    A ``BertForSequenceClassification`` checkpoint becomes a :class:`TextClassifier`; with
    ``output_dir`` it is saved as a model directory (``TextClassifier.load`` opens it). Its
    tokenizer is ``tokenizer`` (a .spiece/.model path, with ``vocab_json`` for the v0.1 pair),
    else the one :func:`to_transformers` put in ``src_dir``, else ``src_dir/spiece.model``
    (transformers' KoBERT layout), else KoBERT's .spiece, found like every KoBERT file.

    Its task follows ``problem_type`` (single-label classification, regression, multi-label); it
    reads sentence pairs when ``pair`` is true, or, with ``pair`` None, when kobert_gluon.json (a
    folder :func:`to_transformers` wrote) says so.

    A plain ``BertModel`` becomes a ``BERTModel`` (with pooler); ``output_dir`` then receives
    ``bert.params`` (the ``bert_12_768_12`` layout, usable as ``train --init_from``),
    ``bert_config.json``, and the tokenizer when one is given or found in ``src_dir``.

    ``output_dir`` must be new, empty or an earlier output of ``convert``; a model it did not
    write is replaced only with ``overwrite`` (fileio.owned_output).
    """
    src_dir = _arg.path('from_transformers', 'src_dir', src_dir)
    require_extra('convert', 'by convert --from-transformers')
    for name, value in (('output_dir', output_dir), ('tokenizer', tokenizer), ('vocab_json', vocab_json),
                        ('kobert_dir', kobert_dir)):
        _arg.path('from_transformers', name, value, optional=True)
    _arg.integer('from_transformers', 'max_len', max_len, minimum=3, optional=True)
    _arg.flag('from_transformers', 'overwrite', overwrite)
    if pair is not None:
        _arg.flag('from_transformers', 'pair', pair)
    with _owned(output_dir, overwrite):
        return _from_transformers(os.fspath(src_dir), output_dir, tokenizer, vocab_json, max_len, kobert_dir, ctx,
                                  pair)


def _from_transformers(src_dir, output_dir, tokenizer, vocab_json, max_len, kobert_dir, ctx, pair=None):
    import mxnet as mx

    from ..models.bert import build_bert

    ctx = ctx or mx.cpu()
    config, bert_config = read_transformers_config(src_dir)
    tensors = read_tensors(src_dir)
    _check_finite(tensors, src_dir)
    if 'classifier.weight' not in tensors:
        bert = build_bert(bert_config, use_pooler=True, use_decoder=False, use_classifier=False)
        bert.initialize(ctx=ctx)
        assign(bert, bert_name_pairs(bert_config.num_layers), tensors, src_dir)
        if output_dir is not None:
            files = _tokenizer_files(src_dir, tokenizer, vocab_json)
            _checked_vocab(files, bert_config.vocab_size, src_dir)
            _save_bert(bert, bert_config, output_dir, files)
        return bert
    from ..text.data import LabelMap
    from ..inference.classifier import classifier_class
    from ..text.tokenizer import get_bert_tokenizer

    from .. import assets

    meta = read_meta(src_dir)
    task, settings, recorded_pair = _task_of(config, meta, src_dir)
    pair = recorded_pair if pair is None else bool(pair)
    files = (_tokenizer_files(src_dir, tokenizer, vocab_json)
             or {'tokenizer': assets.resolve('spiece', kobert_dir=kobert_dir)})
    vocab = _checked_vocab(files, bert_config.vocab_size, src_dir)
    num_outputs = tensors['classifier.weight'].shape[0]
    dropout = meta.get('dropout', config.get('classifier_dropout') or config.get('hidden_dropout_prob', 0.1))
    model = task.build_model(bert_config, num_outputs, dropout, ctx)
    assign(model, classifier_name_pairs(model), tensors, src_dir)
    model.hybridize(static_alloc=True)
    label_map = LabelMap(_label_names(config, num_outputs, src_dir))
    max_len = _max_len(max_len, meta, bert_config, src_dir)
    classifier = classifier_class(task)(model, get_bert_tokenizer(files['tokenizer'], vocab), label_map, bert_config,
                                max_len, files, dropout, ctx, meta.get('training'), task=task,
                                task_settings=settings, pair=pair)
    if output_dir is not None:
        classifier.save(output_dir)
    return classifier


def _task_of(config, meta, src_dir):
    """(task, settings, pair) of a transformers classifier: what kobert_gluon.json records, else
    the task whose problem_type config.json names (absent: single-label classification)."""
    from ..errors import ConfigError
    from ..tasks import registry

    path = os.path.join(src_dir, HF_CONFIG_FILE)
    problem_type = config.get('problem_type')
    # the head (architectures) picks the tasks; problem_type, one of them
    architecture = (config.get('architectures') or ['BertForSequenceClassification'])[0]
    every = [registry.get(name) for name in registry.names()]
    tasks = [task for task in every if task.hf_architecture == architecture] or [
        task for task in every if task.hf_problem_type]
    by_problem = {task.hf_problem_type: task.name for task in tasks}
    if problem_type not in (None, *by_problem):
        raise ConversionError(f'{path}: problem_type={problem_type!r}; expected one of {sorted(by_problem)}')
    try:
        task = registry.get(meta.get('task') or by_problem.get(problem_type), where=f'{src_dir}: task')
        settings = task.check_settings(meta.get('task_settings') or {}, os.path.join(src_dir, META_FILE))
    except ConfigError as error:
        raise ConversionError(str(error)) from None
    return task, settings, bool(meta.get('pair', False))


def _max_len(given, meta, bert_config, src_dir):
    """``given`` (refused beyond the model's positions), else the recorded one (clamped to the
    positions, logged), else DEFAULT_MAX_LEN."""
    positions = bert_config.max_length
    recorded = meta.get('max_len')
    if given is None and isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > positions:
        logger.warning('%s: recorded max_len=%d is beyond the model\'s %d positions: using %d',
                       os.path.join(src_dir, META_FILE), recorded, positions, positions)
        recorded = positions
    max_len = given or recorded or min(DEFAULT_MAX_LEN, positions)
    try:
        return check_max_len(max_len, positions, 'max_len' if given else os.path.join(src_dir, META_FILE))
    except ValueError as error:
        raise ConversionError(str(error)) from None


def _label_names(config, num_classes, src_dir):
    """Label names in id order. id2label must name exactly the ids 0..n-1: a gap or a stray id
    is an error, never a silently renamed label (``b`` became ``LABEL_1``)."""
    id2label = config.get('id2label') or {}
    path = os.path.join(src_dir, HF_CONFIG_FILE)
    if not isinstance(id2label, dict):
        raise ConversionError(f'{path}: id2label must map ids to label names')
    if len(id2label) not in (0, num_classes):
        raise ConversionError(f'{path}: {len(id2label)} labels in id2label but the classifier has {num_classes} outputs')
    if not id2label:
        return [f'LABEL_{i}' for i in range(num_classes)]
    ids = sorted(str(key) for key in id2label)
    expected = sorted(str(i) for i in range(num_classes))
    if ids != expected:
        raise ConversionError(f'{path}: id2label has ids {sorted(id2label, key=str)}, the classifier\'s outputs are '
                              f'0..{num_classes - 1}; give each output exactly one label')
    names = [id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(num_classes)]
    if not all(isinstance(name, str) and name.strip() for name in names) or len(set(names)) != len(names):
        raise ConversionError(f'{path}: id2label names {names}: each must be a distinct, non-empty string')
    return names


def _checked_vocab(tokenizer_files, vocab_size, source):
    """The vocab of ``tokenizer_files`` (None without files); it must have ``vocab_size`` tokens."""
    from ..text.tokenizer import get_vocab

    if not tokenizer_files:
        return None
    vocab = get_vocab(tokenizer_files['tokenizer'], tokenizer_files.get('vocab_json'))
    if len(vocab) != vocab_size:
        raise ConversionError(f'{source}: vocab_size={vocab_size} but the tokenizer {tokenizer_files["tokenizer"]} '
                              f'has {len(vocab)} tokens; pass the tokenizer the checkpoint was trained with '
                              f'(--tokenizer)')
    return vocab


def _tokenizer_files(src_dir, tokenizer=None, vocab_json=None):
    """role -> path: the given files, else those recorded in ``src_dir`` (md5-checked), else its spiece.model."""
    meta = read_meta(src_dir)
    if tokenizer:
        return {'tokenizer': tokenizer, **({'vocab_json': vocab_json} if vocab_json else {})}
    if meta.get('tokenizer'):
        files = {}
        for role, entry in meta['tokenizer'].items():
            path = recorded_file(src_dir, entry)
            if not os.path.isfile(path) or md5sum(path) != entry['md5']:
                raise ConversionError(f'{src_dir}: tokenizer file {TOKENIZER_DIR}/{entry["file"]} is missing or '
                                      f'does not match the md5 in {META_FILE}')
            files[role] = path
        return files
    spiece = os.path.join(src_dir, 'spiece.model')  # transformers' KoBERT layout
    return {'tokenizer': spiece} if os.path.isfile(spiece) else {}


def _copy_tokenizer(directory, tokenizer_files, meta):
    """Copy the files into ``directory/tokenizer/`` and write META_FILE recording them."""
    if tokenizer_files:
        os.makedirs(os.path.join(directory, TOKENIZER_DIR))
        entries = {}
        for role, path in tokenizer_files.items():
            name = os.path.basename(path)
            shutil.copyfile(path, os.path.join(directory, TOKENIZER_DIR, name))
            entries[role] = {'file': name, 'md5': md5sum(path)}
        meta = {**meta, 'tokenizer': entries}
    write_json(os.path.join(directory, META_FILE), meta)


def _save_bert(bert, bert_config, output_dir, tokenizer_files):
    with atomic_directory(output_dir) as tmp:
        bert.save_parameters(os.path.join(tmp, BERT_PARAMS_FILE))
        write_json(os.path.join(tmp, BERT_CONFIG_FILE), bert_config.to_dict())
        _copy_tokenizer(tmp, tokenizer_files, {'library_version': __version__})
    logger.info('saved the converted BERT to %s', output_dir)


# ---------------------------------------------------------------------------- gluon -> transformers

def to_transformers(model_or_dir, output_dir, tokenizer=None, vocab_json=None, num_heads=None, ctx=None,
                    overwrite=False):
    """Write a transformers directory for a classifier or a BERT; returns ``output_dir``.

    ``model_or_dir``: a :class:`TextClassifier`, a model directory (-> BertForSequenceClassification),
    a directory written by :func:`from_transformers` for a plain BERT, or a params file in the
    ``bert_12_768_12`` layout such as SKT's (-> BertModel; its MLM/NSP heads are left out).
    A params file does not record ``num_heads`` (default 12, KoBERT's) nor a tokenizer
    (``tokenizer`` / ``vocab_json``, copied along when given).
    """
    _arg.model_or_dir('to_transformers', 'model_or_dir', model_or_dir)
    require_extra('convert', 'by convert --to-transformers')
    _arg.path('to_transformers', 'output_dir', output_dir)
    for name, value in (('tokenizer', tokenizer), ('vocab_json', vocab_json)):
        _arg.path('to_transformers', name, value, optional=True)
    _arg.integer('to_transformers', 'num_heads', num_heads, minimum=1, optional=True)
    _arg.flag('to_transformers', 'overwrite', overwrite)
    with _owned(output_dir, overwrite):
        return _to_transformers(model_or_dir, output_dir, tokenizer, vocab_json, num_heads, ctx)


def _to_transformers(model_or_dir, output_dir, tokenizer, vocab_json, num_heads, ctx):
    from ..inference.classifier import TextClassifier

    if isinstance(model_or_dir, TextClassifier):
        return _write_classifier(model_or_dir, output_dir, getattr(model_or_dir, 'run_dir', None))
    source = os.fspath(model_or_dir)
    if os.path.isfile(os.path.join(source, BERT_PARAMS_FILE)):
        try:
            config = read_json(os.path.join(source, BERT_CONFIG_FILE))
        except (OSError, ValueError) as error:
            raise ConversionError(f'{os.path.join(source, BERT_CONFIG_FILE)}: unreadable ({error})') from error
        files = _tokenizer_files(source, tokenizer, vocab_json)
        return _write_bert(os.path.join(source, BERT_PARAMS_FILE), output_dir, config.get('num_heads', num_heads),
                           files.get('tokenizer'), files.get('vocab_json'))
    if os.path.isdir(source):
        return _write_classifier(TextClassifier.load(source, ctx=ctx), output_dir, source)
    if not os.path.isfile(source):
        raise ConversionError(f'{source}: no such model directory or params file')
    return _write_bert(source, output_dir, num_heads, tokenizer, vocab_json)


def _write_classifier(classifier, output_dir, source=None):
    """``source``: the model directory (or the run folder) the classifier came from, for the model card."""
    from .model_card import classifier_card, run_record

    model = classifier.model
    params = named_parameters(model)
    tensors = with_bert_prefix({hf: params[gluon].data().asnumpy() for hf, gluon in classifier_name_pairs(model)})
    config = hf_config(classifier.bert_config, classifier.task.hf_architecture)
    names = classifier.label_map.names
    config.update({'id2label': {str(i): name for i, name in enumerate(names)},
                   'label2id': {name: i for i, name in enumerate(names)},
                   'classifier_dropout': classifier.dropout, 'problem_type': classifier.task.hf_problem_type})
    meta = {'library_version': __version__, 'max_len': classifier.max_len, 'dropout': classifier.dropout,
            'task': classifier.task.name, 'task_settings': classifier.task_settings, 'pair': classifier.pair,
            **({'training': classifier.training} if getattr(classifier, 'training', None) else {})}
    train_config, test_report = run_record(source)
    if source is not None and test_report is None and getattr(classifier, 'test_report', None):
        test_report = classifier.test_report
    card = classifier_card(names, config, meta.get('training'), train_config, test_report, source,
                           classifier.max_len, classifier.tokenizer_files, classifier.task, classifier.pair)
    _write_directory(output_dir, tensors, config, meta, classifier.tokenizer_files, classifier.tokenizer.vocab,
                     classifier.max_len, card, pair=classifier.pair)
    return output_dir


def _write_bert(params_path, output_dir, num_heads, tokenizer, vocab_json):
    import mxnet as mx

    from ..models.bert import BertConfig

    try:
        arrays = mx.nd.load(params_path)
    except mx.base.MXNetError as error:
        raise ConversionError(f'{params_path}: not an MXNet parameters file') from error
    if not isinstance(arrays, dict) or 'word_embed.0.weight' not in arrays:
        raise ConversionError(f'{params_path}: not a BERT params file in the bert_12_768_12 layout '
                              f'(no word_embed.0.weight); for a fine-tuned classifier pass its model directory')
    bert_config = infer_bert_config(arrays, num_heads or BertConfig().num_heads, params_path)
    gluon = {name: array.asnumpy().astype(np.float32) for name, array in arrays.items()}
    pairs = bert_name_pairs(bert_config.num_layers)
    missing = [g for _, g in pairs if g not in gluon]
    if missing:
        raise ConversionError(f'{params_path}: missing {len(missing)} parameters: {listing(missing)}')
    tensors = {hf: gluon[g] for hf, g in pairs}
    files = {'tokenizer': tokenizer, **({'vocab_json': vocab_json} if vocab_json else {})} if tokenizer else {}
    vocab = _checked_vocab(files, bert_config.vocab_size, params_path)
    from .model_card import bert_card

    config = hf_config(bert_config, 'BertModel')
    _write_directory(output_dir, tensors, config, {'library_version': __version__}, files, vocab,
                     bert_config.max_length, bert_card(config, params_path, files))
    return output_dir


def _write_directory(output_dir, tensors, config, meta, tokenizer_files, vocab, max_len, card=None, pair=False):
    """Write the folder atomically; its ``tokenizer.json`` is checked against ours before it appears."""
    from .model_card import MODEL_CARD_FILE

    numpy_io = require('safetensors.numpy', 'safetensors')
    _check_finite(tensors, 'the model')
    with atomic_directory(output_dir) as tmp:
        numpy_io.save_file({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()},
                           os.path.join(tmp, SAFETENSORS_FILE), metadata={'format': 'pt'})
        write_json(os.path.join(tmp, HF_CONFIG_FILE), config)
        _copy_tokenizer(tmp, tokenizer_files, meta)
        if vocab is not None:
            with open(os.path.join(tmp, VOCAB_TXT), 'w', encoding='utf-8') as out:
                out.write(''.join(token + '\n' for token in vocab.idx_to_token))
            if tokenizer_files:
                _write_checked_hf_tokenizer(tmp, tokenizer_files['tokenizer'], vocab, max_len, output_dir, pair)
        if card:
            with open(os.path.join(tmp, MODEL_CARD_FILE), 'w', encoding='utf-8') as out:
                out.write(card)
    logger.info('wrote transformers directory %s (%s)', output_dir, config['architectures'][0])


def _write_checked_hf_tokenizer(directory, spiece_path, vocab, max_len, output_dir, pair=False):
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json for ``AutoTokenizer``/``pipeline()``.

    Refuses (ConversionError; nothing is written) when transformers would get other ids than
    ours on any probe text (:data:`hf_tokenizer.PROBE_TEXTS`), instead of a silently wrong folder;
    a pair model's tokenizer is checked on probe pairs too (:mod:`.hf_pairs`: the pieces exactly;
    the pairs only tokenizers' truncation cuts otherwise are counted in the log).
    """
    from ..text.tokenizer import get_bert_tokenizer
    from .hf_pairs import verify_hf_pairs
    from .hf_tokenizer import PROBE_TEXTS, TOKENIZER_JSON, verify_hf_tokenizer, write_hf_tokenizer

    spiece_path = os.fspath(spiece_path)
    gluon_tokenizer = get_bert_tokenizer(spiece_path, vocab)
    try:
        write_hf_tokenizer(spiece_path, vocab, directory, max_len)
        verify_hf_tokenizer(directory, gluon_tokenizer, max_len)
        if pair:
            from tokenizers import Tokenizer

            found = verify_hf_pairs(Tokenizer.from_file(os.path.join(directory, TOKENIZER_JSON)), gluon_tokenizer,
                                    max_len, list(zip(PROBE_TEXTS, PROBE_TEXTS[1:])))
            if found['truncation_differs']:
                logger.info('tokenizer.json: %d of %d probe pairs are cut by tokenizers\' LongestFirst rule, which '
                            'gives the odd piece to the second sentence (gluonnlp: to the first; max_len %d)',
                            len(found['truncation_differs']), found['pairs'], max_len)
    except ConversionError as error:
        raise ConversionError(f'{output_dir}: not written: {error}') from error


# ---------------------------------------------------------------------------- token ids


