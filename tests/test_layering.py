"""The package's imports point one way (docs/design.rst).

The imports are read with ``ast``, top-level and inside functions alike, so a
lazy import cannot hide a cycle.
"""

import ast
import os
from pathlib import Path

import pytest

PACKAGE = "sklearn_cxr"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 700
# Above the core: the command line, the optional Optuna layer, the face.
NOT_CORE = {PACKAGE, f"{PACKAGE}.__main__", f"{PACKAGE}._cli"}
ESTIMATORS = {f"{PACKAGE}._classifier", f"{PACKAGE}._features"}


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {
        _module_name(path): path for path in sorted(ROOT.rglob("*.py"))
    }


MODULES = _modules()


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _imports(name):
    """The modules of the package that ``name`` imports, anywhere in it."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from . import X``: X is a submodule, or a name of the package
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else base)
        else:
            continue
        for target in targets:
            # ``import a.b.c`` needs the deepest module of the package it names
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def _core(name):
    return name not in NOT_CORE and not name.startswith(f"{PACKAGE}.tuning")


def test_the_reader_sees_imports_of_every_kind():
    # the parser itself: relative, package-level and function-level imports
    assert f"{PACKAGE}._persistence" in GRAPH[f"{PACKAGE}._features"]
    assert f"{PACKAGE}._classifier" in GRAPH[PACKAGE]
    assert f"{PACKAGE}.exceptions" in GRAPH[f"{PACKAGE}.datasets._base"]
    assert f"{PACKAGE}._accelerate" in GRAPH[f"{PACKAGE}._finetune"]  # lazy
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_persistence_imports_no_estimator():
    for name in (f"{PACKAGE}._persistence", f"{PACKAGE}._model_schema"):
        assert GRAPH[name] & ESTIMATORS == set(), name


def test_accelerate_imports_no_estimator():
    assert GRAPH[f"{PACKAGE}._accelerate"] & ESTIMATORS == set()


@pytest.mark.parametrize("name", sorted(filter(_core, MODULES)))
def test_core_imports_neither_cli_nor_tuning_nor_the_package_face(name):
    above = {
        target
        for target in GRAPH[name]
        if target in (PACKAGE, f"{PACKAGE}._cli", f"{PACKAGE}.__main__")
        or target.startswith(f"{PACKAGE}.tuning")
    }
    # a subpackage's own __init__ is its face, which it may import
    assert above == set(), f"{name} imports {sorted(above)}"


def test_evaluation_imports_nothing_from_inspection():
    imported = GRAPH[f"{PACKAGE}._evaluation"]
    assert not {t for t in imported if t.startswith(f"{PACKAGE}.inspection")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_700_lines(name):
    with open(MODULES[name]) as handle:
        n_lines = sum(1 for _ in handle)
    assert n_lines <= MAX_LINES, f"{os.fspath(MODULES[name])}: {n_lines} lines"
