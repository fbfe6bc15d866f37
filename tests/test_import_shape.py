"""The layers stay as ARCHITECTURE.md draws them: components at the bottom, pipelines and serving
above it, serving independent of pipelines, and no import cycles between modules.

Read from the source with ``ast`` (every import, also those inside functions), so nothing is
imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

PACKAGES = ("components", "pipelines", "serving")
# What each layer may import from the project: the layer itself and the ones below it.
ALLOWED = {
    "components": {"components"},
    "serving": {"serving", "components"},
    "pipelines": {"pipelines", "components", "serving"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPOSITORY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((REPOSITORY / package).rglob("*.py"))
    }


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, list[str]]]:
    """``(imported module, line, names)`` for every project import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:  # ``from components import tracking``
                    found.append((submodule, node.lineno, []))
                else:
                    found.append((node.module, node.lineno, [alias.name]))
    return [(name, line, names) for name, line, names in found if name.split(".")[0] in PACKAGES]


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: first line}."""
    modules = project_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, {})
        for imported, line, _ in imports_of(path, modules):
            if imported != name:
                edges.setdefault(imported, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for neighbour in graph.get(node, {}):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_layer_imports_a_layer_above_it():
    modules = project_modules()
    upward = [
        f"{module_name(path)}:{line} imports {imported}"
        for path in modules.values()
        for imported, line, _ in imports_of(path, modules)
        if imported.split(".")[0] not in ALLOWED[module_name(path).split(".")[0]]
    ]
    assert upward == [], "imports against the layering:\n" + "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    modules = project_modules()
    private = [
        f"{module_name(path)}:{line} imports {name} from {imported}"
        for path in modules.values()
        for imported, line, names in imports_of(path, modules)
        for name in names
        if name.startswith("_") and imported != module_name(path)
    ]
    assert private == [], "\n".join(private)


def test_the_import_graph_has_no_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, []),
        ({"a": {"b": 1}, "b": {"a": 1}}, [["a", "b"]]),
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert cycles(graph) == expected


def test_the_checks_see_function_level_and_package_imports(tmp_path):
    """The walk must not miss the lazy imports that hid the old circles."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from components import tracking\n"
        "def f():\n"
        "    from pipelines.benchmark import _table\n"
        "    import serving.server\n"
    )
    found = imports_of(source, project_modules())
    assert found == [
        ("components.tracking", 1, []),
        ("pipelines.benchmark", 3, ["_table"]),
        ("serving.server", 4, []),
    ]
