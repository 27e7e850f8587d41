"""The lazy public API: importing kobert_gluon loads no mxnet, and every public name is what it
says, whatever submodules were imported first (a subpackage must never shadow a public function)."""
import os
import subprocess
import sys

from hangguard import hang_guard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHECK = '''
import sys, types
import kobert_gluon as kg
assert 'mxnet' not in sys.modules, 'import kobert_gluon loaded mxnet'
import kobert_gluon.training.config, kobert_gluon.inference.export, kobert_gluon.serve  # subpackages first
for name in kg.__all__:
    value = getattr(kg, name)
    assert not isinstance(value, types.ModuleType), f'kg.{name} is a module'
assert kg.train.__module__ == 'kobert_gluon.training.finetune'
assert kg.export.__module__ == 'kobert_gluon.inference.export'
from kobert_gluon.training import TrainConfig, train  # the 0.5.0 module path
assert train is kg.train and TrainConfig is kg.TrainConfig
print('ok')
'''


def test_public_names_are_never_shadowed_by_subpackages():
    result = subprocess.run([sys.executable, '-c', CHECK], capture_output=True, text=True, timeout=hang_guard(60),
                            env={**os.environ, 'PYTHONPATH': REPO})
    assert result.stdout.strip() == 'ok', result.stderr[-2000:]
