"""Gluon BERT weights as live transformers (PyTorch) modules, in memory.

The same tensor mapping as :mod:`hf_weights` (the two networks compute the same function,
only the names differ), without a round trip through files: ``get_pytorch_kobert_model``
returns the BertModel, and the ONNX export traces the BertForSequenceClassification.
torch and transformers are the ``convert`` extra; without them: MissingExtraError.
"""
import numpy as np

from ..errors import ConversionError
from .hf_weights import bert_name_pairs, classifier_name_pairs, hf_config, require, with_bert_prefix
from .params import named_parameters


def _transformers_config(bert_config, architecture, **extra):
    transformers = require('transformers')
    settings = {key: value for key, value in hf_config(bert_config, architecture).items() if key != 'model_type'}
    return transformers.BertConfig(**settings, **extra)


def _load(model, tensors, source):
    torch = require('torch')
    state = {name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for name, value in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not name.endswith('position_ids')]  # a buffer, not a weight
    if missing or unexpected:
        raise ConversionError(f'{source}: the transformers model has other tensors: missing {missing[:5]}, '
                              f'unexpected {list(unexpected)[:5]}')
    return model.eval()


def torch_bert(bert, bert_config, return_dict=False, device='cpu'):
    """A transformers ``BertModel`` (with pooler) holding the weights of gluonnlp ``bert``.

    ``return_dict=False``: it returns ``(sequence_output, pooled_output)`` tuples, as the
    model of SKT's ``get_pytorch_kobert_model`` did.
    """
    torch, transformers = require('torch'), require('transformers')
    params = named_parameters(bert)
    tensors = {hf: params[gluon].data().asnumpy() for hf, gluon in bert_name_pairs(bert_config.num_layers)}
    model = transformers.BertModel(_transformers_config(bert_config, 'BertModel', return_dict=return_dict),
                                   add_pooling_layer=True)
    return _load(model, tensors, 'the Gluon BERT').to(torch.device(device))


def torch_classifier(classifier, return_dict=True):
    """The transformers model of a TextClassifier's task (``BertForSequenceClassification`` for
    the sequence tasks) holding its weights."""
    transformers = require('transformers')
    params = named_parameters(classifier.model)
    tensors = with_bert_prefix({hf: params[gluon].data().asnumpy()
                                for hf, gluon in classifier_name_pairs(classifier.model)})
    names = classifier.label_map.names
    architecture = classifier.task.hf_architecture
    config = _transformers_config(classifier.bert_config, architecture, return_dict=return_dict,
                                  num_labels=classifier.num_classes, id2label=dict(enumerate(names)),
                                  label2id={name: i for i, name in enumerate(names)},
                                  classifier_dropout=classifier.dropout,
                                  problem_type=classifier.task.hf_problem_type)
    return _load(getattr(transformers, architecture)(config), tensors, 'the classifier')
