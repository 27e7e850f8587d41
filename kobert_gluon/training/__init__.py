"""Fine-tuning and pretraining recipes (see docs/architecture.md).

``kobert_gluon.training`` was the fine-tuning module before 0.6; its public names still resolve
here (``from kobert_gluon.training import TrainConfig, train``), imported on first use."""
import importlib

_OLD_NAMES = {'TrainConfig': 'config', 'OptimizerConfig': 'config', 'check_types': 'config',
              'train': 'finetune', 'load_splits': 'splits', 'make_loader': 'splits',
              'learning_rate_at': 'optim', 'clip_gradients': 'optim', 'optimizer_step': 'optim',
              'exclude_from_weight_decay': 'optim'}


def __getattr__(name):
    module = _OLD_NAMES.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{module}', __name__), name)
