"""The task registry: names, aliases, lookups, the hooks every task fills in, and a new task."""
import inspect

import numpy as np
import pytest

from kobert_gluon.errors import ConfigError
from kobert_gluon.tasks import registry
from kobert_gluon.tasks.inputs import Columns


def test_the_sequence_tasks_are_registered_in_order_with_the_old_name_as_an_alias():
    assert registry.names()[:3] == ('classification', 'regression', 'multi_label')
    assert registry.get(None) is registry.get('classification') is registry.get('text_classification')
    assert registry.get('regression').hf_problem_type == 'regression'
    assert registry.get('multi_label').hf_problem_type == 'multi_label_classification'
    assert registry.get('classification').hf_problem_type == 'single_label_classification'


@pytest.mark.parametrize('name', ['classify', 3, ''])
def test_an_unknown_task_is_one_error_naming_the_choices(name):
    with pytest.raises(ConfigError, match=r"task=.*expected one of \['classification', 'regression', 'multi_label'"):
        registry.get(name)


def test_every_registered_task_fills_in_every_hook():
    hooks = [name for name, member in inspect.getmembers(registry.Task, inspect.isfunction)
             if 'raise NotImplementedError' in inspect.getsource(member)]
    assert {'read_labels', 'build_model', 'loss', 'collect', 'report', 'prediction'} <= set(hooks)
    for name in registry.names():
        task = registry.get(name)
        for hook in hooks:
            assert getattr(type(task), hook) is not getattr(registry.Task, hook), (name, hook)
        assert task.select_metrics and set(task.minimize) <= set(task.select_metrics)
        assert set(task.summary_metrics) >= set(task.select_metrics)
        assert task.prediction_fields and task.running_metric


def test_a_registered_task_is_found_and_a_clashing_name_is_refused(monkeypatch):
    class Copy(type(registry.get('classification'))):
        name, aliases = 'copy_task', ('copy_alias',)
    monkeypatch.setattr(registry, 'TASKS', dict(registry.TASKS))
    task = registry.register(Copy())
    assert registry.get('copy_alias') is task and 'copy_task' in registry.names()
    with pytest.raises(ValueError, match='registered twice'):
        registry.register(type('Clash', (Copy,), {'name': 'regression', 'aliases': ()})())


def test_settings_are_completed_and_checked():
    multi_label = registry.get('multi_label')
    assert multi_label.check_settings({}, 'x') == {'threshold': 0.5}
    assert multi_label.check_settings({'threshold': 0.3}, 'x') == {'threshold': 0.3}
    for bad in (0, 1, 1.5, -0.1, True, '0.5'):
        with pytest.raises(ConfigError, match='threshold=.*between 0 and 1'):
            multi_label.check_settings({'threshold': bad}, 'x')
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['threshold'\] for task 'classification'"):
        registry.get('classification').check_settings({'threshold': 0.5}, 'x')


def test_improvement_follows_the_metric_direction():
    regression = registry.get('regression')
    assert regression.improved(0.5, 0.9, 'mse') and not regression.improved(0.9, 0.5, 'mse')
    assert regression.improved(0.9, 0.5, 'spearman') and regression.improved(0.1, None, 'pearson')


def test_the_running_metric_of_each_task_counts_what_it_says():
    classification, regression, multi_label = (registry.get(n) for n in ('classification', 'regression',
                                                                          'multi_label'))
    assert classification.running(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1])) == (2, 3)
    total, count = regression.running(np.array([[1.0], [3.0]]), np.array([2.0, 2.5]))
    assert (total, count) == (pytest.approx(1.25), 2)
    logits = np.array([[2.0, -1.0], [1.0, 1.0]])
    assert multi_label.running(logits, np.array([[1, 0], [1, 0]], dtype=np.float32)) == (1, 2)


def test_columns_come_from_the_settings_of_a_run():
    columns = Columns.of({'text_column': 'sentence1', 'text_pair_column': 'sentence2', 'label_column': 'score'})
    assert columns.texts() == ['sentence1', 'sentence2'] and columns.label_sources() == ['score']
    columns = Columns.of({'label_columns': 'a, b,c'})
    assert columns.label_columns == ('a', 'b', 'c') and columns.all() == ['text', 'a', 'b', 'c']
    with pytest.raises(ConfigError, match='empty column name'):
        Columns.of({'label_columns': 'a,,b'})
