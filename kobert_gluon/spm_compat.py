"""Make gluonnlp 0.10's SentencePiece wrapper work with sentencepiece >= 0.1.99.

gluonnlp calls ``SampleEncodeAsPieces(text, num_best, alpha)`` even when ``num_best`` is
0 or 1, which old sentencepiece treated as "no sampling" and new sentencepiece rejects.
The deterministic ``EncodeAsPieces`` gives exactly the old pieces, so we route those
cases there. The class is patched in memory; site-packages is never edited.
"""
from gluonnlp.data import transforms

_ORIGINAL_CALL = transforms.SentencepieceTokenizer.__call__


def _call(self, sample):
    if self._nbest in (0, 1):
        return self._processor.EncodeAsPieces(sample)
    return self._processor.SampleEncodeAsPieces(sample, self._nbest, self._alpha)


def apply() -> None:
    """Idempotent: BERTSPTokenizer builds a SentencepieceTokenizer, so it is covered too."""
    transforms.SentencepieceTokenizer.__call__ = _call


def is_applied() -> bool:
    return transforms.SentencepieceTokenizer.__call__ is _call
