"""The package's layering (docs/architecture.md): no module imports a module of a higher layer.

Imports are read from the source (AST), at module level and inside functions alike;
imports under ``if TYPE_CHECKING:`` are annotations only and are not counted. The
package root ``manystore/__init__.py`` is the lazy facade and may name anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "manystore"

#: Layer of each top-level module or subpackage of ``manystore``; lower numbers are lower layers.
LAYERS: dict[str, int] = {
    # 0: vocabulary shared by everything
    "errors": 0,
    "types": 0,
    "schema": 0,
    "utils": 0,
    "urls": 0,
    "retry": 0,
    "telemetry": 0,
    "masking": 0,
    "provider_bundles": 0,
    "sync_types": 0,
    "attribute_filter": 0,
    "_contract": 0,
    # 1: one file per backend; the read cache
    "providers": 1,
    "caching": 1,
    # 2: configuration (builds providers)
    "config": 2,
    "config_files": 2,
    # 3: the client and what it is made of
    "objectio": 3,
    "file": 3,
    "client": 3,
    "client_autocommit": 3,
    "client_batch": 3,
    "client_links": 3,
    "client_sync": 3,
    "generators": 3,
    "mirror": 3,
    # 4: URL-level API, pathlib, command line
    "shortcuts": 4,
    "pathlib": 4,
    "_pathlocal": 4,
    "_pathio": 4,
    "cli": 4,
    "demo": 4,
    "__main__": 4,
    # 5: the ML layers
    "torch": 5,
    "batch": 5,
    "samples": 5,
    "arrays": 5,
    # 6: adapters named as in the reference; they re-export from the layer that owns the code
    "contrib": 6,
    "numpy": 6,
    "pickle": 6,
    "os": 6,
    "async_fs": 6,
}

#: Among the ML layers, who may use whom (everything else is forbidden).
ML_MAY_USE: dict[str, set[str]] = {
    "torch": set(),
    "batch": set(),
    "arrays": set(),
    "samples": {"torch", "batch"},
}


def _runtime_imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, top-level manystore name)`` of every import of ``path`` outside ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package_parts = list(path.relative_to(PKG.parent).parts[:-1])  # e.g. ["manystore", "providers"]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    parts = alias.name.split(".")
                    if parts[0] == "manystore" and len(parts) > 1:
                        found.append((child.lineno, parts[1]))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package_parts[: len(package_parts) - (child.level - 1)]
                    target = [*base, *(child.module.split(".") if child.module else [])]
                else:
                    target = (child.module or "").split(".")
                if target and target[0] == "manystore":
                    if len(target) > 1:
                        found.append((child.lineno, target[1]))
                    else:  # from manystore import x / from . import x (at the package root)
                        found.extend((child.lineno, a.name) for a in child.names)
            visit(child)

    visit(tree)
    return found


def _owner(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


MODULES = sorted(p for p in PKG.rglob("*.py") if p != PKG / "__init__.py")


def test_every_module_has_a_layer() -> None:
    unknown = sorted({_owner(p) for p in MODULES} - set(LAYERS))
    assert not unknown, f"add these to LAYERS and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_import(path: Path) -> None:
    owner = _owner(path)
    level = LAYERS[owner]
    bad = []
    for line, name in _runtime_imports(path):
        if name == "__version__" or name not in LAYERS or name == owner:
            continue
        if LAYERS[name] > level:
            bad.append(f"line {line}: {owner} (layer {level}) imports {name} (layer {LAYERS[name]})")
        elif level == LAYERS[name] == 5 and name not in ML_MAY_USE[owner]:
            bad.append(f"line {line}: ML layer {owner} imports ML layer {name}")
    assert not bad, "\n".join(bad)


def test_checker_sees_upward_imports() -> None:
    """The checker itself: lazy and absolute imports are found, ``TYPE_CHECKING`` ones are not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import manystore.cli\n"
        "if TYPE_CHECKING:\n    from ..client import StorageClient\n"
        "def f():\n    from ..shortcuts import open\n    from . import base\n"
    )
    found = _runtime_imports(PKG / "providers" / "probe.py", source)
    assert [name for _, name in found] == ["cli", "shortcuts", "providers"]


def test_no_runtime_import_cycle() -> None:
    """Between top-level modules/subpackages, runtime imports form no cycle (same-layer included)."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        owner = _owner(path)
        deps = {n for _, n in _runtime_imports(path) if n in LAYERS and n != owner}
        graph.setdefault(owner, set()).update(deps)
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                dfs(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node)
