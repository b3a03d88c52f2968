"""The proxy's layers import downward only, with no cycles (type-checking imports included) and no
function-level imports of the proxy's own modules (the usual way to hide a cycle).

Layers, lowest first (a module may import its own package and any lower layer):
    compiled (which modules run compiled), then the package root (its version)
    protocol, metrics, process, security (sans-IO parsers; counters; event loop setup; TLS
        contexts and the auth file)
    backends
    config, handlers
    orcas
    ring
    server
    listener
    compose (the composition root)
    kubewatch (the config ConfigMap watched through the Kubernetes API)
    reload (live reconfiguration)
    app
    workers
    cli, then __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "service" / "cacheproxy"
LAYERS: list[set[str]] = [
    {"compiled"},
    {"__init__"},
    {"protocol", "metrics", "process", "security"},
    {"backends"},
    {"config", "handlers"},
    {"orcas"},
    {"ring"},
    {"server"},
    {"listener"},
    {"compose"},
    {"kubewatch"},
    {"reload"},
    {"app"},
    {"workers"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def top_of(module: str) -> str:
    """The layer unit of a module: its first package component (``backends.pool`` → ``backends``)."""
    return module.split(".")[0] or "__init__"


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The cacheproxy modules a ``from ... import ...`` names (relative to IMPORTER)."""
    if node.level == 0:
        if not (node.module or "").startswith("cacheproxy"):
            return []
        base = (node.module or "")[len("cacheproxy"):].lstrip(".")
    else:
        parts = importer.split(".") if importer != "__init__" else []
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, node.module] if node.module else parts)
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        path = PACKAGE_DIR.joinpath(*candidate.split("."))
        targets.append(candidate if path.with_suffix(".py").exists() or path.is_dir() else base or "__init__")
    return targets


def collect() -> tuple[dict[str, set[str]], list[str]]:
    """Every module's imports of other cacheproxy modules, and the function-level ones."""
    graph: dict[str, set[str]] = {}
    nested: list[str] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        top_level = set(map(id, tree.body))
        for node in tree.body:  # imports under `if TYPE_CHECKING:` count as top level
            if isinstance(node, ast.If | ast.Try):
                top_level.update(map(id, ast.walk(node)))
        deps: set[str] = set()
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                targets = resolve(name, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                targets = [a.name[len("cacheproxy."):] for a in node.names if a.name.startswith("cacheproxy.")]
            if targets and id(node) not in top_level:
                nested.append(f"{name}:{node.lineno} imports {', '.join(targets)} inside a function")
            deps.update(t for t in targets if t != name)
        graph[name] = deps
    return graph, nested


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in graph.items():
        unit = top_of(module)
        assert unit in RANK, f"{module}: package {unit!r} has no layer; add it to LAYERS"
        for dep in deps:
            dep_unit = top_of(dep)
            if dep_unit == unit:
                continue
            if RANK[dep_unit] >= RANK[unit]:
                bad.append(f"{module} imports {dep} (layer {dep_unit} is not below {unit})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_import_points_down_a_layer() -> None:
    graph, _ = collect()
    assert upward_imports(graph) == []


def test_no_import_cycles_not_even_for_type_checking() -> None:
    graph, _ = collect()
    assert cycles(graph) == []


def test_no_function_level_imports_of_our_own_modules() -> None:
    _, nested = collect()
    assert nested == []


@pytest.mark.parametrize("source, expected", [
    ("from ..app import Runtime\n", "imports app"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..server.connection import ClientConnection\n",
     "imports server.connection"),
])
def test_the_check_catches_an_injected_upward_import(tmp_path: Path, source: str, expected: str) -> None:
    """The checks above are only worth something if they fail: inject an upward import into a
    copy of a low module's source and see it reported."""
    graph, _ = collect()
    victim = "backends.outbox"
    tree = ast.parse(source)
    injected = set(graph[victim])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            injected.update(resolve(victim, False, node))
    report = upward_imports({**graph, victim: injected})
    assert any(expected in line for line in report), report
