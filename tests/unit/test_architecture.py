"""The package's shape, checked: imports only run downward (import-linter's layers contract in
.importlinter), no import cycles between modules, no function over 80 lines, no module over 450."""
import ast
import os
import shutil
import subprocess
import sys

import pytest
from hangguard import hang_guard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO, 'kobert_gluon')
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450


def modules():
    for directory, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith('.py'):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                is_package = parts[-1] == '__init__'
                yield '.'.join(parts[:-1] if is_package else parts), is_package, path


def imports_of(module, is_package, path):
    """Modules of the package that ``module`` imports (at any depth of its code)."""
    package = module.split('.') if is_package else module.split('.')[:-1]
    found = set()
    with open(path, encoding='utf-8') as source:
        tree = ast.parse(source.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = '.'.join(base + ([node.module] if node.module else []))
            found.add((target, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Import):
            found.update((alias.name, ()) for alias in node.names)
    return found


def import_graph():
    known = {module: (is_package, path) for module, is_package, path in modules()}
    graph = {}
    for module, (is_package, path) in known.items():
        edges = set()
        for target, names in imports_of(module, is_package, path):
            submodules = {f'{target}.{name}' for name in names} & set(known)
            edges |= submodules or ({target} & set(known))
        graph[module] = edges - {module}
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_long_functions_or_modules():
    too_long = []
    for module, _, path in modules():
        with open(path, encoding='utf-8') as source:
            text = source.read()
        if text.count('\n') > MAX_MODULE_LINES:
            too_long.append(f'{module}: {text.count(chr(10))} lines')
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f'{module}.{node.name}: {length} lines')
    assert too_long == []


def test_imports_run_downward():
    lint_imports = shutil.which('lint-imports', path=os.path.dirname(sys.executable)) or shutil.which('lint-imports')
    if lint_imports is None:
        pytest.skip('import-linter is not installed (the dev extra brings it)')
    result = subprocess.run([lint_imports], cwd=REPO, capture_output=True, text=True, timeout=hang_guard(60))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
