"""``kobert``: a stand-in for SKT Brain's KoBERT package (v0.1-v0.2.x), served by kobert_gluon.

Code written for SKT's package runs unchanged::

    from kobert import get_mxnet_kobert_model, get_tokenizer, download
    from kobert.utils import get_tokenizer, download
    from kobert.mxnet_kobert import get_mxnet_kobert_model, get_kobert_model

Same signatures and return values as the originals; files come from kobert_gluon's lookup
(see ``kobert_gluon.assets``). ``get_pytorch_kobert_model`` converts the Gluon weights to a
transformers BertModel (the ``convert`` extra); ``get_onnx_kobert_model`` finds SKT's ONNX file
or, with ``model_file=``, writes one (the ``onnx`` extra). HEAD's ``get_tokenizer_path`` is
``get_tokenizer``; v0.1-era folders (the ``.model`` + vocab ``.json`` pair) are recognised.

Importing this package does not load mxnet; ``get_mxnet_kobert_model`` does, on first use.
SKT's package installs a ``kobert`` too: a mix of both is reported (KobertAliasWarning).
"""
import importlib

import kobert_gluon  # thread defaults and the SentencePiece fix, before mxnet/gluonnlp load
from kobert_gluon.legacy import download, get_tokenizer, warn_if_kobert_alias_mixed

get_tokenizer_path = get_tokenizer  # KoBERT HEAD ("0.2.4") renamed get_tokenizer(cachedir)

__kobert_gluon_alias__ = True  # kobert_gluon.legacy.kobert_alias_problems looks for this name
__version__ = kobert_gluon.__version__
__all__ = ('download', 'get_tokenizer', 'get_tokenizer_path', 'get_pytorch_kobert_model', 'get_mxnet_kobert_model',
           'get_onnx_kobert_model')

_LAZY = {'get_mxnet_kobert_model': 'mxnet_kobert', 'get_pytorch_kobert_model': 'pytorch_kobert',
         'get_onnx_kobert_model': 'onnx_kobert'}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{module}', __name__), name)
    globals()[name] = value
    return value


warn_if_kobert_alias_mixed()
