"""Each extra's imports are checked as a whole (kobert_gluon/extras.py, issue 29 finding 6): a
module missing from an extra is a MissingExtraError naming the extra and every missing package,
simulated here by setting the module to None in sys.modules (importing it then fails)."""
import importlib
import sys

import pytest

from kobert_gluon import extras
from kobert_gluon.errors import MissingExtraError


@pytest.mark.parametrize('extra', sorted(extras.EXTRAS))
def test_each_module_of_each_extra_is_checked(monkeypatch, extra):
    for module, package in extras.EXTRAS[extra]:
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)
            with pytest.raises(MissingExtraError, match=rf'{package}.*kobert_gluon\[{extra}\]'):
                extras.require_extra(extra)


def test_every_missing_package_is_named_at_once(monkeypatch):
    for module in ('google.protobuf', 'tokenizers'):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=r'tokenizers, protobuf \(needed here\) is not installed'):
        extras.require_extra('convert', 'here')


def test_a_missing_parent_package_is_missing_too(monkeypatch):
    monkeypatch.setitem(sys.modules, 'google', None)
    monkeypatch.delitem(sys.modules, 'google.protobuf', raising=False)
    assert 'protobuf' in extras.missing('convert')


def test_convert_without_protobuf_names_the_extra_before_any_work(monkeypatch, tmp_path):
    import kobert_gluon as kg
    monkeypatch.setitem(sys.modules, 'google.protobuf', None)
    with pytest.raises(MissingExtraError, match=r'protobuf \(needed by convert --to-transformers\).*\[convert\]'):
        kg.to_transformers(str(tmp_path / 'no-model'), str(tmp_path / 'out'))
    with pytest.raises(MissingExtraError, match=r'protobuf .*\[convert\]'):
        kg.from_transformers(str(tmp_path / 'no-model'))
    assert not (tmp_path / 'out').exists()


def test_serve_without_uvicorn_names_the_extra_on_import(monkeypatch):
    monkeypatch.setitem(sys.modules, 'uvicorn', None)
    for name in ('kobert_gluon.serve.app', 'kobert_gluon.serve.requests', 'kobert_gluon.serve.schemas'):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(MissingExtraError, match=r'uvicorn.*kobert_gluon\[serve\]'):
        importlib.import_module('kobert_gluon.serve.app')
