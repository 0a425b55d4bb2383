"""indoor_parsing.data imports no cycle, and nothing imports the ``prepare`` command line (data/prepare/__main__)."""

import ast
from pathlib import Path

import indoor_parsing

PACKAGE = Path(indoor_parsing.__file__).parent
DISPATCH = "indoor_parsing.data.prepare.__main__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (also inside functions), from the source alone."""
    modules = {_module_name(p): p for p in folder.rglob("*.py")}
    everything = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import sub`` imports the module pkg.sub when there is one
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in everything else node.module
                          for a in node.names}  # fmt: skip
        graph[name] = {m for m in found if m in everything and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_data_has_no_import_cycle():
    assert find_cycle(import_graph(PACKAGE / "data")) is None


def test_no_module_imports_the_prepare_command_line():
    graph = import_graph(PACKAGE)
    assert not [name for name, imports in graph.items() if DISPATCH in imports]
