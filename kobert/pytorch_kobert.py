"""KoBERT's ``kobert.pytorch_kobert``: the PyTorch KoBERT, converted from the Gluon weights.

``get_pytorch_kobert_model`` returns ``(transformers BertModel, gluonnlp vocab)`` as SKT's
v0.2.3 did: the model in eval mode on ``ctx``, ``return_dict=False`` (it returns tuples:
``sequence_output, pooled_output = model(input_ids, attention_mask, token_type_ids)``). Its
weights are the ones ``get_mxnet_kobert_model`` loads (SKT's ``mxnet_kobert_45b6957552.params``,
or ``model_file=``), converted tensor by tensor: both compute the same function.
Needs torch and transformers: ``pip install "kobert_gluon[convert]"``.
"""
import os

from kobert_gluon.errors import ConversionError, MissingExtraError
from kobert_gluon.legacy import bert_config, download, get_tokenizer, get_tokenizer_path  # noqa: F401  (SKT's names)
from kobert_gluon.legacy import pytorch_kobert, pytorch_kobert_models as kobert_models  # noqa: F401

CONVERT_EXTRA = 'torch and transformers (for the PyTorch KoBERT)'

__all__ = ('get_pytorch_kobert_model', 'get_kobert_model')


def _require_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise MissingExtraError('convert', CONVERT_EXTRA) from None


def get_pytorch_kobert_model(ctx='cpu', cachedir=None, model_file=None, kobert_dir=None, config=None):
    """``(BertModel, vocab)``: KoBERT in PyTorch, converted from the Gluon weights.

    ``cachedir``, ``model_file`` and ``kobert_dir`` find the files as in
    ``get_mxnet_kobert_model``; ``config`` (a ``kobert_gluon.models.config.BertConfig``) is
    the size of ``model_file`` when it is not KoBERT's 12 x 768.
    """
    _require_torch()
    import mxnet as mx

    from kobert_gluon.models.config import BertConfig
    from kobert_gluon.models.torch_bert import torch_bert
    from kobert_gluon.mxnet_kobert import get_mxnet_kobert_model

    config = config or BertConfig.kobert()
    bert, vocab = get_mxnet_kobert_model(use_pooler=True, use_decoder=False, use_classifier=False, ctx=mx.cpu(),
                                         cachedir=cachedir, model_file=model_file, kobert_dir=kobert_dir,
                                         config=config)
    return torch_bert(bert, config, return_dict=False, device=ctx), vocab


def get_kobert_model(model_path, vocab_file, ctx='cpu'):
    """KoBERT v0.1's ``get_kobert_model``: ``(BertModel, vocab)`` from a model and a vocab file.

    ``model_path``: a transformers BertModel folder (what SKT's ``kobert_v1.zip`` unpacked to,
    or ``kobert-gluon convert --to-transformers`` wrote), or a Gluon params file in the
    ``bert_12_768_12`` layout (converted). ``vocab_file``: the ``.spiece`` or v0.1's vocab ``.json``.
    """
    _require_torch()
    import torch
    import transformers

    from kobert_gluon.text.tokenizer import get_vocab

    vocab_file = os.fspath(vocab_file)
    vocab = (get_vocab(vocab_json=vocab_file) if vocab_file.endswith('.json') else get_vocab(vocab_file))
    model_path = os.fspath(model_path)
    if os.path.isdir(model_path):
        model = transformers.BertModel.from_pretrained(model_path, return_dict=False)
        return model.to(torch.device(ctx)).eval(), vocab
    if not os.path.isfile(model_path):
        raise ConversionError(f'{model_path}: no such transformers folder or Gluon params file')
    from kobert_gluon.models.config import BertConfig
    from kobert_gluon.models.torch_bert import torch_bert
    from kobert_gluon.mxnet_kobert import get_kobert_model as get_gluon_kobert_model

    bert, _ = get_gluon_kobert_model(model_path, vocab_file, use_decoder=False, use_classifier=False)
    return torch_bert(bert, BertConfig.kobert(), return_dict=False, device=ctx), vocab
