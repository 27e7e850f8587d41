"""Make gluonnlp 0.10's SentencePiece wrapper work with sentencepiece >= 0.1.99.

gluonnlp calls ``SampleEncodeAsPieces(text, num_best, alpha)`` even when ``num_best`` is
0 or 1, which old sentencepiece treated as "no sampling" and new sentencepiece rejects.
The deterministic ``EncodeAsPieces`` gives exactly the old pieces, so we route those
cases there. The class is patched in memory; site-packages is never edited, and nothing
else in gluonnlp is touched.

``import kobert_gluon`` must not load gluonnlp (it loads mxnet), so :func:`install` applies
the fix at once when gluonnlp is already imported, and otherwise right after gluonnlp's
first import, through a one-shot finder on ``sys.meta_path``.
"""
import importlib.abc
import importlib.util
import sys


def _call(self, sample):
    if self._nbest in (0, 1):
        return self._processor.EncodeAsPieces(sample)
    return self._processor.SampleEncodeAsPieces(sample, self._nbest, self._alpha)


def apply() -> None:
    """Idempotent: BERTSPTokenizer builds a SentencepieceTokenizer, so it is covered too."""
    from gluonnlp.data import transforms
    transforms.SentencepieceTokenizer.__call__ = _call


def is_applied() -> bool:
    from gluonnlp.data import transforms
    return transforms.SentencepieceTokenizer.__call__ is _call


def install() -> None:
    """Apply the fix now if gluonnlp is loaded, else as soon as it is."""
    if 'gluonnlp' in sys.modules:
        apply()
    elif not any(isinstance(finder, _AfterGluonnlpImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterGluonnlpImport())


class _AfterGluonnlpImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the real loader of ``gluonnlp`` to apply the fix after it ran."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'gluonnlp':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, 'exec_module'):
            run_module = spec.loader.exec_module

            def exec_module(module):
                run_module(module)
                apply()

            spec.loader.exec_module = exec_module  # this spec's loader instance only
        return spec
