"""Old import path ``kobert_gluon.utils``: the same module as :mod:`kobert_gluon.legacy`
(KoBERT's ``kobert.utils`` API), so old imports and attribute changes reach one module."""
import sys

from . import legacy

sys.modules[__name__] = legacy
