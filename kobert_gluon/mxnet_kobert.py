"""KoBERT's old module path: ``from kobert.mxnet_kobert import get_mxnet_kobert_model``, and
v0.1's ``get_kobert_model(model_file, vocab_file)``."""
import mxnet as mx

from . import assets
from .legacy import tokenizer_files
from .models import bert
from .text.tokenizer import get_vocab

__all__ = ['get_mxnet_kobert_model', 'get_kobert_model']


def get_mxnet_kobert_model(use_pooler=True, use_decoder=True, use_classifier=True, ctx=mx.cpu(0),
                           cachedir=None, model_file=None, kobert_dir=None, vocab=None, config=None):
    """KoBERT's ``get_mxnet_kobert_model``: ``(model, vocab)``; see ``models.bert.get_mxnet_kobert_model``.

    The vocab comes from the ``.spiece`` file, or in a v0.1-era folder that holds only v0.1's
    pair (``~/kobert`` with ``tokenizer_78b3253a26.model`` + ``kobertvocab_f38b8a4d6d.json``)
    from its ``.json``: the same tokens in the same order.
    """
    cachedir = assets.remember_cache_dir(cachedir)
    if vocab is None:
        files = tokenizer_files(kobert_dir, cachedir)
        vocab = get_vocab(files['tokenizer'], files.get('vocab_json'))
    return bert.get_mxnet_kobert_model(use_pooler, use_decoder, use_classifier, ctx, cachedir=cachedir,
                                       model_file=model_file, kobert_dir=kobert_dir, vocab=vocab, config=config)


def get_kobert_model(model_file, vocab_file, use_pooler=True, use_decoder=True, use_classifier=True,
                     ctx=mx.cpu(0)):
    """KoBERT v0.1's loader: ``(model, vocab)`` from a params file and a vocabulary file.

    ``vocab_file`` is the ``.spiece`` tokenizer (v0.1.1+) or v0.1's ``kobertvocab_*.json``.
    ``model_file`` is checked for the bert_12_768_12 layout, not for SKT's md5.
    """
    vocab_file = str(vocab_file)
    vocab = (get_vocab(vocab_json=vocab_file) if vocab_file.endswith('.json')
             else get_vocab(tokenizer_path=vocab_file))
    return get_mxnet_kobert_model(use_pooler, use_decoder, use_classifier, ctx, model_file=str(model_file),
                                  vocab=vocab)
