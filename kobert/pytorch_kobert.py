"""KoBERT's ``kobert.pytorch_kobert``: not served by kobert_gluon (MXNet only)."""
from kobert_gluon.errors import ConversionError

CONVERSION_HINT = ('kobert_gluon serves the MXNet model only. For PyTorch, convert a model with '
                   '`kobert-gluon convert --to-transformers` (see the README), then load it with '
                   'transformers\' BertModel.from_pretrained; or install SKT\'s kobert package '
                   'instead of kobert_gluon.')


def get_pytorch_kobert_model(ctx='cpu', cachedir='.cache'):
    raise ConversionError(f'get_pytorch_kobert_model is not available: {CONVERSION_HINT}')
