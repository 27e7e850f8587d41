"""transformers BERT tensors <-> gluonnlp BERT parameters: names, shapes, reading, assigning.

transformers' ``BertModel`` and gluonnlp's ``BERTModel`` (``bert_12_768_12`` layout) compute the
same function (erf GELU, LayerNorm epsilon 1e-12, post-LN blocks, tanh pooler on [CLS]); only
tensor names differ and every weight keeps its orientation, so conversion is a renaming and
outputs agree to float32 rounding.

Reading is safe: safetensors through the ``safetensors`` package (numpy, no torch), ``.bin``
only through ``torch.load(weights_only=True)``, so a checkpoint cannot run code. Whole folders
(model directories, tokenizers, labels) are :mod:`kobert_gluon.interop.transformers`' job.
"""
import importlib
import logging
import os

import numpy as np

from ..errors import ConversionError, MissingExtraError
from ..fileio import read_json
from .config import BertConfig
from .params import named_parameters

logger = logging.getLogger(__name__)

HF_CONFIG_FILE = 'config.json'  # transformers' BertConfig
SAFETENSORS_FILE = 'model.safetensors'
PYTORCH_FILE = 'pytorch_model.bin'
GLUON_LAYER_NORM_EPS = 1e-12  # BERTEncoder's default, which build_bert keeps
# Tensors that carry no weights (a buffer older transformers saved) or belong to
# pre-training heads a fine-tuning model never uses; everything else must match exactly.
IGNORED_PREFIXES = ('embeddings.position_ids', 'cls.predictions.', 'cls.seq_relationship.')
MAX_LISTED = 8
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
    """Name pairs of a BERTClassifier (or BERTTagger): its BERT under ``bert.``, then the Dense head."""
    head = len(model.classifier) - 1  # after the optional Dropout
    pairs = [(hf, f'bert.{gluon}') for hf, gluon in bert_name_pairs(len(model.bert.encoder.transformer_cells))]
    if not model.bert._use_pooler:  # a tagger (BertForTokenClassification has no pooler either)
        pairs = [(hf, gluon) for hf, gluon in pairs if not hf.startswith('pooler.')]
    return pairs + [(f'classifier.{hf}', f'classifier.{head}.{gluon}') for hf, gluon in DENSE]


def with_bert_prefix(tensors):
    """BertForSequenceClassification's names: the BERT's under ``bert.``, the head's as they are."""
    return {(name if name.startswith('classifier.') else 'bert.' + name): value for name, value in tensors.items()}


def listing(items):
    items = list(items)
    shown = ', '.join(items[:MAX_LISTED])
    return shown + (f' and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else '')


def _shape(shape):
    return 'x'.join(str(n) for n in shape)


def read_transformers_config(src_dir):
    """``(transformers config dict, BertConfig)``; errors name what does not fit gluonnlp's BERT."""
    path = os.path.join(src_dir, HF_CONFIG_FILE)
    if not os.path.isfile(path):
        problem = f'missing {HF_CONFIG_FILE}' if os.path.isdir(src_dir) else 'no such directory'
        raise ConversionError(f'{src_dir}: {problem}; expected a transformers checkpoint directory ({HF_CONFIG_FILE} + '
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
                    listing(ignored))
    missing = [f'{name} {_shape(shape)}' for name, shape in expected.items() if name not in tensors]
    extra = [f'{name} {_shape(tensors[name].shape)}' for name in tensors
             if name not in expected and name not in ignored]
    misshaped = [f'{name} is {_shape(tensors[name].shape)}, expected {_shape(shape)}'
                 for name, shape in expected.items() if name in tensors and tensors[name].shape != tuple(shape)]
    problems = [f'{label} ({len(names)}): {listing(names)}'
                for label, names in (('missing', missing), ('unexpected', extra), ('misshaped', misshaped)) if names]
    if problems:
        raise ConversionError(f'{source}: tensors do not fit the config: ' + '; '.join(problems))


def assign(block, pairs, tensors, source):
    """Copy ``tensors`` (transformers names) into ``block``'s initialised parameters (gluonnlp names)."""
    import mxnet as mx

    params = named_parameters(block)
    if any(0 in param.shape for param in params.values()):
        # gluonnlp's Dense layers learn in_units from a first forward pass; one token does.
        extra = [mx.nd.zeros((1, 1))] if getattr(block, '_use_decoder', False) else []
        block(mx.nd.ones((1, 1)), mx.nd.zeros((1, 1)), mx.nd.ones((1,)), *extra)
    _match(tensors, {hf: params[gluon].shape for hf, gluon in pairs}, source)
    for hf, gluon in pairs:
        params[gluon].set_data(mx.nd.array(tensors[hf], dtype='float32'))


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
    assign(bert, pairs, tensors, src_dir)
    logger.info('loaded transformers BERT weights (%d layers, vocab %d) from %s',
                config['num_hidden_layers'], config['vocab_size'], src_dir)
    return bert


def hf_config(bert_config, architecture):
    return {'architectures': [architecture], 'model_type': 'bert',
            'vocab_size': bert_config.vocab_size, 'hidden_size': bert_config.units,
            'num_hidden_layers': bert_config.num_layers, 'num_attention_heads': bert_config.num_heads,
            'intermediate_size': bert_config.hidden_size, 'hidden_act': 'gelu',
            'hidden_dropout_prob': bert_config.dropout, 'attention_probs_dropout_prob': bert_config.dropout,
            'max_position_embeddings': bert_config.max_length, 'type_vocab_size': bert_config.token_type_vocab_size,
            'initializer_range': 0.02, 'layer_norm_eps': GLUON_LAYER_NORM_EPS, 'pad_token_id': 1,
            'position_embedding_type': 'absolute'}


def infer_bert_config(arrays, num_heads, source):
    num_layers = len({name.split('.')[2] for name in arrays if name.startswith('encoder.transformer_cells.')})
    vocab_size, units = arrays['word_embed.0.weight'].shape
    try:
        return BertConfig(num_layers=num_layers, units=units, num_heads=num_heads,
                          hidden_size=arrays['encoder.transformer_cells.0.ffn.ffn_1.weight'].shape[0],
                          max_length=arrays['encoder.position_weight'].shape[0], vocab_size=vocab_size,
                          token_type_vocab_size=arrays['token_type_embed.0.weight'].shape[0])
    except (KeyError, ValueError) as error:
        raise ConversionError(f'{source}: cannot tell the BERT size ({error})') from error
