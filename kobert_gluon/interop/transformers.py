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
    tokenizer/           our SentencePiece file(s), names kept
    kobert_gluon.json    max_len, dropout, tokenizer md5s: what from_transformers restores

transformers' own KoBERT tokenizer (an XLNetTokenizer) splits punctuation differently from
gluonnlp's BERTSPTokenizer, so PyTorch code gets our exact ids from :class:`TokenIds`.
"""
import importlib
import logging
import os
import shutil
import unicodedata

import numpy as np

from .._version import __version__
from ..assets import md5sum
from ..errors import ConversionError, MissingExtraError
from ..fileio import atomic_directory, file_inside, read_json, write_json

logger = logging.getLogger(__name__)

CONFIG_FILE = 'config.json'
SAFETENSORS_FILE = 'model.safetensors'
PYTORCH_FILE = 'pytorch_model.bin'
META_FILE = 'kobert_gluon.json'
VOCAB_TXT = 'vocab.txt'
TOKENIZER_DIR = 'tokenizer'
BERT_PARAMS_FILE = 'bert.params'
BERT_CONFIG_FILE = 'bert_config.json'
GLUON_LAYER_NORM_EPS = 1e-12  # BERTEncoder's default, which build_bert keeps
DEFAULT_MAX_LEN = 64
CLASSIFIER_ARCHITECTURE = 'BertForSequenceClassification'
# Tensors that carry no weights (a buffer older transformers saved) or belong to
# pre-training heads a fine-tuning model never uses; everything else must match exactly.
IGNORED_PREFIXES = ('embeddings.position_ids', 'cls.predictions.', 'cls.seq_relationship.')
MAX_LISTED = 8
# A directory holding one of these is an earlier output (ours or a model directory) and may
# be replaced; any other non-empty directory is refused, so a typo cannot wipe unrelated files.
OUTPUT_MARKERS = (META_FILE, BERT_PARAMS_FILE, 'model.params')

DENSE = (('weight', 'weight'), ('bias', 'bias'))
LAYER_NORM = (('weight', 'gamma'), ('bias', 'beta'))
EMBEDDINGS = (('embeddings.word_embeddings.weight', 'word_embed.0.weight'),
              ('embeddings.token_type_embeddings.weight', 'token_type_embed.0.weight'),
              ('embeddings.position_embeddings.weight', 'encoder.position_weight'))
# (transformers module, gluonnlp block, parameter kind) inside one encoder layer
LAYER = (('attention.self.query', 'attention_cell.proj_query', DENSE),
         ('attention.self.key', 'attention_cell.proj_key', DENSE),
         ('attention.self.value', 'attention_cell.proj_value', DENSE),
         ('attention.output.dense', 'proj', DENSE),
         ('attention.output.LayerNorm', 'layer_norm', LAYER_NORM),
         ('intermediate.dense', 'ffn.ffn_1', DENSE),
         ('output.dense', 'ffn.ffn_2', DENSE),
         ('output.LayerNorm', 'ffn.layer_norm', LAYER_NORM))


def require(module, what=None):
    """Import an optional dependency of the ``convert`` extra, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError('convert', what or module) from None


# ---------------------------------------------------------------------------- names

def bert_name_pairs(num_layers):
    """``[(transformers name in BertModel, gluonnlp name in BERTModel)]`` for every BERT tensor."""
    pairs = list(EMBEDDINGS)
    pairs += [(f'embeddings.LayerNorm.{hf}', f'encoder.layer_norm.{gluon}') for hf, gluon in LAYER_NORM]
    for i in range(num_layers):
        for hf_module, gluon_block, kind in LAYER:
            pairs += [(f'encoder.layer.{i}.{hf_module}.{hf}', f'encoder.transformer_cells.{i}.{gluon_block}.{gluon}')
                      for hf, gluon in kind]
    pairs += [(f'pooler.dense.{hf}', f'pooler.{gluon}') for hf, gluon in DENSE]
    return pairs


def classifier_name_pairs(model):
    """Name pairs of a BERTClassifier: its BERT under ``bert.``, then the Dense head."""
    head = len(model.classifier) - 1  # after the optional Dropout
    pairs = [(hf, f'bert.{gluon}') for hf, gluon in bert_name_pairs(len(model.bert.encoder.transformer_cells))]
    return pairs + [(f'classifier.{hf}', f'classifier.{head}.{gluon}') for hf, gluon in DENSE]


def with_bert_prefix(tensors):
    """BertForSequenceClassification's names: the BERT's under ``bert.``, the head's as they are."""
    return {(name if name.startswith('classifier.') else 'bert.' + name): value for name, value in tensors.items()}


def _gluon_params(block):
    """name -> Parameter, named as ``save_parameters`` names them."""
    return block._collect_params_with_prefix()  # pylint: disable=protected-access


def _listing(items):
    items = list(items)
    shown = ', '.join(items[:MAX_LISTED])
    return shown + (f' and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else '')


def _shape(shape):
    return 'x'.join(str(n) for n in shape)


def check_output_dir(output_dir):
    if output_dir is None or not os.path.exists(output_dir):
        return
    if not os.path.isdir(output_dir):
        raise ConversionError(f'{output_dir}: exists and is not a directory')
    names = os.listdir(output_dir)
    if names and not any(marker in names for marker in OUTPUT_MARKERS):
        raise ConversionError(f'{output_dir}: refusing to replace a non-empty directory that holds no converted '
                              f'model ({", ".join(OUTPUT_MARKERS)}); choose a new or empty directory')


# ---------------------------------------------------------------------------- reading

def read_transformers_config(src_dir):
    """``(transformers config dict, BertConfig)``; errors name what does not fit gluonnlp's BERT."""
    from ..models.bert import BertConfig

    path = os.path.join(src_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        problem = f'missing {CONFIG_FILE}' if os.path.isdir(src_dir) else 'no such directory'
        raise ConversionError(f'{src_dir}: {problem}; expected a transformers checkpoint directory ({CONFIG_FILE} + '
                              f'{SAFETENSORS_FILE} or {PYTORCH_FILE})')
    try:
        config = read_json(path)
    except ValueError as error:
        raise ConversionError(f'{path}: not valid JSON ({error})') from error
    model_type = config.get('model_type')
    if model_type != 'bert':
        raise ConversionError(f'{path}: model_type={model_type!r}; only BERT checkpoints (model_type "bert") '
                              f'convert to gluonnlp\'s BERTModel')
    checks = {'hidden_act': ('gelu',), 'position_embedding_type': ('absolute', None)}
    for key, allowed in checks.items():
        if config.get(key, allowed[0]) not in allowed:
            raise ConversionError(f'{path}: {key}={config[key]!r}; gluonnlp\'s BERT supports only {allowed[0]!r}')
    eps = config.get('layer_norm_eps', GLUON_LAYER_NORM_EPS)
    if not np.isclose(eps, GLUON_LAYER_NORM_EPS, rtol=0.01, atol=0):
        raise ConversionError(f'{path}: layer_norm_eps={eps}; gluonnlp\'s BERTEncoder uses {GLUON_LAYER_NORM_EPS}')
    try:
        bert_config = BertConfig(num_layers=config['num_hidden_layers'], units=config['hidden_size'],
                                 hidden_size=config['intermediate_size'], num_heads=config['num_attention_heads'],
                                 max_length=config['max_position_embeddings'],
                                 dropout=config.get('hidden_dropout_prob', 0.1), vocab_size=config['vocab_size'],
                                 token_type_vocab_size=config.get('type_vocab_size', 2))
    except KeyError as error:
        raise ConversionError(f'{path}: missing {error.args[0]!r}') from error
    except (TypeError, ValueError) as error:
        raise ConversionError(f'{path}: {error}') from error
    return config, bert_config


def read_tensors(src_dir):
    """name -> float32 numpy array from ``model.safetensors`` (preferred) or ``pytorch_model.bin``."""
    safetensors_path = os.path.join(src_dir, SAFETENSORS_FILE)
    bin_path = os.path.join(src_dir, PYTORCH_FILE)
    if os.path.isfile(safetensors_path):
        tensors = _read_safetensors(safetensors_path)
    elif os.path.isfile(bin_path):
        tensors = _read_torch_bin(bin_path)
    else:
        sharded = [name for name in os.listdir(src_dir) if name.endswith('.index.json')]
        detail = f' (sharded checkpoints such as {sharded[0]} are not supported)' if sharded else ''
        raise ConversionError(f'{src_dir}: no {SAFETENSORS_FILE} or {PYTORCH_FILE}{detail}')
    return _strip_prefix(tensors)


def _read_safetensors(path):
    numpy_io = require('safetensors.numpy', 'safetensors')
    try:
        tensors = numpy_io.load_file(path)
    except Exception as error:  # safetensors raises its own error types and TypeError for bf16
        raise ConversionError(f'{path}: cannot read ({error}); bfloat16 files need re-saving as float32') from error
    return {name: np.asarray(value, dtype=np.float32) for name, value in tensors.items()}


def _read_torch_bin(path):
    torch = require('torch', 'torch (to read pytorch_model.bin)')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # UnpicklingError and whatever a damaged zip raises
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f'{path}: refused: not a plain tensor checkpoint (torch.load with '
                              f'weights_only=True: {first}); nothing in it was run') from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f'{path}: expected a dict of tensors (a state_dict)')
    return {name: value.detach().to(torch.float32).numpy() for name, value in state.items()}


def _strip_prefix(tensors):
    """BertForSequenceClassification keeps the BERT under ``bert.``; old checkpoints name LayerNorm gamma/beta."""
    stripped = {}
    for name, value in tensors.items():
        if name.startswith('bert.'):
            name = name[len('bert.'):]
        if '.LayerNorm.' in name:
            name = name.replace('.LayerNorm.gamma', '.LayerNorm.weight').replace('.LayerNorm.beta', '.LayerNorm.bias')
        stripped[name] = value
    return stripped


def _match(tensors, expected, source):
    """Check names and shapes: ``expected`` maps transformers names to shapes; extra names are errors."""
    ignored = [name for name in tensors if name.startswith(IGNORED_PREFIXES)]
    if ignored:
        logger.info('%s: ignoring %d tensors of pre-training heads/buffers (%s)', source, len(ignored),
                    _listing(ignored))
    missing = [f'{name} {_shape(shape)}' for name, shape in expected.items() if name not in tensors]
    extra = [f'{name} {_shape(tensors[name].shape)}' for name in tensors
             if name not in expected and name not in ignored]
    misshaped = [f'{name} is {_shape(tensors[name].shape)}, expected {_shape(shape)}'
                 for name, shape in expected.items() if name in tensors and tensors[name].shape != tuple(shape)]
    problems = [f'{label} ({len(names)}): {_listing(names)}'
                for label, names in (('missing', missing), ('unexpected', extra), ('misshaped', misshaped)) if names]
    if problems:
        raise ConversionError(f'{source}: tensors do not fit the config: ' + '; '.join(problems))


def _assign(block, pairs, tensors, source):
    """Copy ``tensors`` (transformers names) into ``block``'s initialised parameters (gluonnlp names)."""
    import mxnet as mx

    params = _gluon_params(block)
    if any(0 in param.shape for param in params.values()):
        # gluonnlp's Dense layers learn in_units from a first forward pass; one token does.
        extra = [mx.nd.zeros((1, 1))] if getattr(block, '_use_decoder', False) else []
        block(mx.nd.ones((1, 1)), mx.nd.zeros((1, 1)), mx.nd.ones((1,)), *extra)
    _match(tensors, {hf: params[gluon].shape for hf, gluon in pairs}, source)
    for hf, gluon in pairs:
        params[gluon].set_data(mx.nd.array(tensors[hf], dtype='float32'))


# ---------------------------------------------------------------------------- transformers -> gluon

def load_transformers_bert(bert, src_dir):
    """Load a transformers BERT checkpoint directory into an initialised gluonnlp ``bert``.

    For ``train --init_from DIR``: a classifier head in the checkpoint is left out, as
    ``load_parameters(ignore_extra=True)`` leaves out a params file's pre-training heads.
    """
    config, _ = read_transformers_config(src_dir)
    tensors = read_tensors(src_dir)
    tensors = {name: value for name, value in tensors.items() if not name.startswith('classifier.')}
    pairs = bert_name_pairs(len(bert.encoder.transformer_cells))
    if not getattr(bert, '_use_pooler', True):
        pairs = [pair for pair in pairs if not pair[0].startswith('pooler.')]
        tensors = {name: value for name, value in tensors.items() if not name.startswith('pooler.')}
    _assign(bert, pairs, tensors, src_dir)
    logger.info('loaded transformers BERT weights (%d layers, vocab %d) from %s',
                config['num_hidden_layers'], config['vocab_size'], src_dir)
    return bert


def from_transformers(src_dir, output_dir=None, tokenizer=None, vocab_json=None, max_len=None, kobert_dir=None,
                      ctx=None):
    """Convert a transformers BERT directory; returns a TextClassifier or a gluonnlp BERTModel.

    A ``BertForSequenceClassification`` checkpoint becomes a :class:`TextClassifier`; with
    ``output_dir`` it is saved as a model directory (``TextClassifier.load`` opens it). Its
    tokenizer is ``tokenizer`` (a .spiece/.model path, with ``vocab_json`` for the v0.1 pair),
    else the one :func:`to_transformers` put in ``src_dir``, else ``src_dir/spiece.model``
    (transformers' KoBERT layout), else KoBERT's .spiece, found like every KoBERT file.

    A plain ``BertModel`` becomes a ``BERTModel`` (with pooler); ``output_dir`` then receives
    ``bert.params`` (the ``bert_12_768_12`` layout, usable as ``train --init_from``),
    ``bert_config.json``, and the tokenizer when one is given or found in ``src_dir``.
    """
    import mxnet as mx

    from ..models.bert import BERTClassifier, build_bert

    src_dir = os.fspath(src_dir)
    ctx = ctx or mx.cpu()
    check_output_dir(output_dir)
    config, bert_config = read_transformers_config(src_dir)
    tensors = read_tensors(src_dir)
    if 'classifier.weight' not in tensors:
        bert = build_bert(bert_config, use_pooler=True, use_decoder=False, use_classifier=False)
        bert.initialize(ctx=ctx)
        _assign(bert, bert_name_pairs(bert_config.num_layers), tensors, src_dir)
        if output_dir is not None:
            files = _tokenizer_files(src_dir, tokenizer, vocab_json)
            _checked_vocab(files, bert_config.vocab_size, src_dir)
            _save_bert(bert, bert_config, output_dir, files)
        return bert
    from ..text.data import LabelMap
    from ..inference.classifier import TextClassifier
    from ..text.tokenizer import get_bert_tokenizer

    from .. import assets

    meta = _read_meta(src_dir)
    files = (_tokenizer_files(src_dir, tokenizer, vocab_json)
             or {'tokenizer': assets.resolve('spiece', kobert_dir=kobert_dir)})
    vocab = _checked_vocab(files, bert_config.vocab_size, src_dir)
    num_classes = tensors['classifier.weight'].shape[0]
    dropout = meta.get('dropout', config.get('classifier_dropout') or config.get('hidden_dropout_prob', 0.1))
    model = BERTClassifier(build_bert(bert_config, use_pooler=True, use_decoder=False, use_classifier=False),
                           num_classes=num_classes, dropout=dropout)
    model.initialize(ctx=ctx)
    _assign(model, classifier_name_pairs(model), tensors, src_dir)
    model.hybridize(static_alloc=True)
    label_map = LabelMap(_label_names(config, num_classes, src_dir))
    max_len = max_len or meta.get('max_len') or min(DEFAULT_MAX_LEN, bert_config.max_length)
    classifier = TextClassifier(model, get_bert_tokenizer(files['tokenizer'], vocab), label_map, bert_config,
                                max_len, files, dropout, ctx, meta.get('training'))
    if output_dir is not None:
        classifier.save(output_dir)
    return classifier


def _label_names(config, num_classes, src_dir):
    id2label = config.get('id2label') or {}
    names = [id2label.get(str(i), id2label.get(i, f'LABEL_{i}')) for i in range(num_classes)]
    if len(id2label) not in (0, num_classes):
        raise ConversionError(f'{os.path.join(src_dir, CONFIG_FILE)}: {len(id2label)} labels in id2label but the '
                              f'classifier has {num_classes} outputs')
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


def _read_meta(src_dir):
    path = os.path.join(src_dir, META_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        meta = read_json(path)
    except ValueError as error:
        raise ConversionError(f'{path}: not valid JSON ({error})') from error
    if not isinstance(meta, dict) or not isinstance(meta.get('tokenizer', {}), dict):
        raise ConversionError(f'{path}: expected a JSON object whose "tokenizer" maps roles to files')
    return meta


def _tokenizer_files(src_dir, tokenizer=None, vocab_json=None):
    """role -> path: the given files, else those recorded in ``src_dir`` (md5-checked), else its spiece.model."""
    meta = _read_meta(src_dir)
    if tokenizer:
        return {'tokenizer': tokenizer, **({'vocab_json': vocab_json} if vocab_json else {})}
    if meta.get('tokenizer'):
        files = {}
        for role, entry in meta['tokenizer'].items():
            path = _recorded_file(src_dir, entry)
            if not os.path.isfile(path) or md5sum(path) != entry['md5']:
                raise ConversionError(f'{src_dir}: tokenizer file {TOKENIZER_DIR}/{entry["file"]} is missing or '
                                      f'does not match the md5 in {META_FILE}')
            files[role] = path
        return files
    spiece = os.path.join(src_dir, 'spiece.model')  # transformers' KoBERT layout
    return {'tokenizer': spiece} if os.path.isfile(spiece) else {}


def _recorded_file(directory, entry):
    """A tokenizer file named in META_FILE (a downloaded directory may have written anything)."""
    name = entry.get('file') if isinstance(entry, dict) else None
    return file_inside(directory, TOKENIZER_DIR, name, ConversionError, os.path.join(directory, META_FILE))


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

def to_transformers(model_or_dir, output_dir, tokenizer=None, vocab_json=None, num_heads=None, ctx=None):
    """Write a transformers directory for a classifier or a BERT; returns ``output_dir``.

    ``model_or_dir``: a :class:`TextClassifier`, a model directory (-> BertForSequenceClassification),
    a directory written by :func:`from_transformers` for a plain BERT, or a params file in the
    ``bert_12_768_12`` layout such as SKT's (-> BertModel; its MLM/NSP heads are left out).
    A params file does not record ``num_heads`` (default 12, KoBERT's) nor a tokenizer
    (``tokenizer`` / ``vocab_json``, copied along when given).
    """
    from ..inference.classifier import TextClassifier

    check_output_dir(output_dir)
    if isinstance(model_or_dir, TextClassifier):
        return _write_classifier(model_or_dir, output_dir)
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
        return _write_classifier(TextClassifier.load(source, ctx=ctx), output_dir)
    if not os.path.isfile(source):
        raise ConversionError(f'{source}: no such model directory or params file')
    return _write_bert(source, output_dir, num_heads, tokenizer, vocab_json)


def _hf_config(bert_config, architecture):
    return {'architectures': [architecture], 'model_type': 'bert',
            'vocab_size': bert_config.vocab_size, 'hidden_size': bert_config.units,
            'num_hidden_layers': bert_config.num_layers, 'num_attention_heads': bert_config.num_heads,
            'intermediate_size': bert_config.hidden_size, 'hidden_act': 'gelu',
            'hidden_dropout_prob': bert_config.dropout, 'attention_probs_dropout_prob': bert_config.dropout,
            'max_position_embeddings': bert_config.max_length, 'type_vocab_size': bert_config.token_type_vocab_size,
            'initializer_range': 0.02, 'layer_norm_eps': GLUON_LAYER_NORM_EPS, 'pad_token_id': 1,
            'position_embedding_type': 'absolute'}


def _write_classifier(classifier, output_dir):
    model = classifier.model
    params = _gluon_params(model)
    tensors = with_bert_prefix({hf: params[gluon].data().asnumpy() for hf, gluon in classifier_name_pairs(model)})
    config = _hf_config(classifier.bert_config, CLASSIFIER_ARCHITECTURE)
    names = classifier.label_map.names
    config.update({'id2label': {str(i): name for i, name in enumerate(names)},
                   'label2id': {name: i for i, name in enumerate(names)},
                   'classifier_dropout': classifier.dropout, 'problem_type': 'single_label_classification'})
    meta = {'library_version': __version__, 'max_len': classifier.max_len, 'dropout': classifier.dropout,
            **({'training': classifier.training} if getattr(classifier, 'training', None) else {})}
    _write_directory(output_dir, tensors, config, meta, classifier.tokenizer_files, classifier.tokenizer.vocab)
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
    bert_config = _infer_bert_config(arrays, num_heads or BertConfig().num_heads, params_path)
    gluon = {name: array.asnumpy().astype(np.float32) for name, array in arrays.items()}
    pairs = bert_name_pairs(bert_config.num_layers)
    missing = [g for _, g in pairs if g not in gluon]
    if missing:
        raise ConversionError(f'{params_path}: missing {len(missing)} parameters: {_listing(missing)}')
    tensors = {hf: gluon[g] for hf, g in pairs}
    files = {'tokenizer': tokenizer, **({'vocab_json': vocab_json} if vocab_json else {})} if tokenizer else {}
    vocab = _checked_vocab(files, bert_config.vocab_size, params_path)
    _write_directory(output_dir, tensors, _hf_config(bert_config, 'BertModel'),
                     {'library_version': __version__}, files, vocab)
    return output_dir


def _infer_bert_config(arrays, num_heads, source):
    from ..models.bert import BertConfig

    num_layers = len({name.split('.')[2] for name in arrays if name.startswith('encoder.transformer_cells.')})
    vocab_size, units = arrays['word_embed.0.weight'].shape
    try:
        return BertConfig(num_layers=num_layers, units=units, num_heads=num_heads,
                          hidden_size=arrays['encoder.transformer_cells.0.ffn.ffn_1.weight'].shape[0],
                          max_length=arrays['encoder.position_weight'].shape[0], vocab_size=vocab_size,
                          token_type_vocab_size=arrays['token_type_embed.0.weight'].shape[0])
    except (KeyError, ValueError) as error:
        raise ConversionError(f'{source}: cannot tell the BERT size ({error})') from error


def _write_directory(output_dir, tensors, config, meta, tokenizer_files, vocab):
    numpy_io = require('safetensors.numpy', 'safetensors')
    with atomic_directory(output_dir) as tmp:
        numpy_io.save_file({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()},
                           os.path.join(tmp, SAFETENSORS_FILE), metadata={'format': 'pt'})
        write_json(os.path.join(tmp, CONFIG_FILE), config)
        _copy_tokenizer(tmp, tokenizer_files, meta)
        if vocab is not None:
            with open(os.path.join(tmp, VOCAB_TXT), 'w', encoding='utf-8') as out:
                out.write(''.join(token + '\n' for token in vocab.idx_to_token))
    logger.info('wrote transformers directory %s (%s)', output_dir, config['architectures'][0])


# ---------------------------------------------------------------------------- token ids

class TokenIds:
    """Exactly the ids gluonnlp's BERTSPTokenizer + BERTSentenceTransform give, without gluonnlp.

    For PyTorch code: BERT's basic tokenization (cased, as KoBERT's) splits whitespace and
    punctuation, then SentencePiece encodes each word on its own, and pieces are looked up
    in our vocab. Needs only ``sentencepiece``::

        ids = TokenIds.from_directory('kobert-hf')
        batch = ids(['정말 재밌어요!'], max_len=64)       # input_ids, token_type_ids, attention_mask
        logits = model(**{k: torch.tensor(v) for k, v in batch.items()}).logits
    """

    def __init__(self, sentencepiece_path, tokens):
        import sentencepiece

        self.sentencepiece = sentencepiece.SentencePieceProcessor(model_file=os.fspath(sentencepiece_path))
        self.tokens = list(tokens)
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        self.unk_id, self.pad_id = self.token_to_id['[UNK]'], self.token_to_id['[PAD]']
        self.cls_id, self.sep_id = self.token_to_id['[CLS]'], self.token_to_id['[SEP]']

    @classmethod
    def from_directory(cls, directory):
        """From a directory :func:`to_transformers` wrote (tokenizer/ + vocab.txt + kobert_gluon.json)."""
        meta = _read_meta(directory)
        if not meta.get('tokenizer'):
            raise ConversionError(f'{directory}: no tokenizer recorded in {META_FILE}')
        with open(os.path.join(directory, VOCAB_TXT), encoding='utf-8') as source:
            tokens = source.read().split('\n')[:-1]
        return cls(_recorded_file(directory, meta['tokenizer']['tokenizer']), tokens)

    def tokenize(self, text):
        return [piece for word in basic_tokenize(text) for piece in self.sentencepiece.encode(word, out_type=str)]

    def encode(self, text, max_len=None):
        """``[CLS] ids [SEP]``, cut to ``max_len`` as BERTSentenceTransform cuts."""
        ids = [self.token_to_id.get(piece, self.unk_id) for piece in self.tokenize(text)]
        if max_len is not None:
            ids = ids[:max_len - 2]
        return [self.cls_id] + ids + [self.sep_id]

    def __call__(self, texts, max_len=None):
        """int64 arrays ``input_ids``, ``token_type_ids``, ``attention_mask`` padded with [PAD]."""
        encoded = [self.encode(text, max_len) for text in texts]
        width = max((len(ids) for ids in encoded), default=0)
        input_ids = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, ids in enumerate(encoded):
            input_ids[row, :len(ids)] = ids
            attention_mask[row, :len(ids)] = 1
        return {'input_ids': input_ids, 'token_type_ids': np.zeros_like(input_ids), 'attention_mask': attention_mask}


def basic_tokenize(text):
    """gluonnlp 0.10's cased BERTBasicTokenizer: drop control chars, space out CJK and punctuation.

    Like gluonnlp it NFD-normalises and drops non-spacing marks even when cased; SentencePiece
    recomposes Hangul afterwards.
    """
    chars = []
    for char in text:
        category = unicodedata.category(char)
        if char in '\x00\ufffd' or (category in ('Cc', 'Cf') and char not in '\t\n\r'):
            continue
        if char in ' \t\n\r' or category == 'Zs':
            chars.append(' ')
        elif _is_cjk(ord(char)):
            chars.append(f' {char} ')
        else:
            chars.append(char)
    words = []
    for char in unicodedata.normalize('NFD', ''.join(chars).strip()):
        category = unicodedata.category(char)
        if category == 'Mn':
            continue
        words.append(f' {char} ' if _is_punctuation(ord(char), category) else char)
    return ''.join(words).split()


CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(code):
    return any(low <= code <= high for low, high in CJK_RANGES)


def _is_punctuation(code, category):
    # BERT counts every non-alphanumeric ASCII symbol ($, ^, `) as punctuation too.
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 or category.startswith('P')
