"""The package's layout as docs/design.md draws it, checked from the source text (ast; nothing is imported).

Guards: no import cycle between modules or between top-level folders, nothing in a lower layer imports an upper one,
no file over 300 lines, and docs/design.md's tree lists exactly the package's files.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "indoor_parsing"
MAX_LINES = 300
# Layers that plain PyTorch code may use; they must not reach up into Lightning glue, tools or the command line.
LOWER = ("data", "models", "geometry", "metrics", "io", "errors", "losses")
UPPER = ("methods", "training", "inference", "tools", "distill", "lightning_cli", "cli")


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its text (top level, in functions, under TYPE_CHECKING).

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``.
    """

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                    base = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets |= {t for n in names if n.split(".")[0] == PACKAGE and (t := resolve(n)) and t != module}
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted; [] when acyclic."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def top(module: str) -> str:
    """The top-level folder or module of the package a module lives in: indoor_parsing.data.layout -> data."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {}
    for module, targets in graph.items():
        folders.setdefault(top(module), set()).update(top(t) for t in targets if top(t) != top(module))
    folders.pop(PACKAGE, None)  # indoor_parsing/__init__.py only runs the torchvision guard
    return folders


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if top(m) in LOWER for t in targets if top(t) in UPPER)


def long_files(modules: dict[str, Path], root: Path = ROOT) -> list[str]:
    lengths = {path: len(path.read_text().splitlines()) for path in modules.values()}
    return sorted(f"{p.relative_to(root)}: {n} lines" for p, n in lengths.items() if n > MAX_LINES)


def design_tree(text: str) -> list[str]:
    """The paths drawn in the ``indoor_parsing/`` tree block of docs/design.md, relative to the checkout.

    A line is ``<tree drawing><name>[/]  <its job>``; its depth is the column of the name divided by 4.
    """
    block = re.search(r"```text\n(indoor_parsing/.*?)```", text, re.S)
    assert block, "docs/design.md: no ```text block starting with indoor_parsing/ (the package tree)"
    paths, stack = [], []
    for line in block.group(1).splitlines()[1:]:
        match = re.match(r"^([│├└─\s]*)(\S+)", line)
        if not match or not match.group(2).strip("│"):
            continue
        depth, name = len(match.group(1)) // 4, match.group(2)
        stack = [*stack[: depth - 1], name.rstrip("/")]
        paths.append("/".join([PACKAGE, *stack]) + ("/" if name.endswith("/") else ""))
    return paths


def test_no_import_cycle_between_modules():
    cycles = find_cycles(import_graph(package_modules()))
    assert cycles == [], f"modules that import each other (directly or round a loop): {cycles}"


def test_no_import_cycle_between_folders():
    cycles = find_cycles(folder_graph(import_graph(package_modules())))
    assert cycles == [], f"top-level folders that import each other: {cycles}"


def test_lower_layers_do_not_import_upper_ones():
    upward = upward_imports(import_graph(package_modules()))
    assert upward == [], f"{'/'.join(LOWER)} must not import {'/'.join(UPPER)}: {upward}"


def test_no_file_over_300_lines():
    long = long_files(package_modules())
    assert long == [], f"files over {MAX_LINES} lines (split them by job): {long}"


def test_design_tree_matches_the_package():
    drawn = design_tree((ROOT / "docs" / "design.md").read_text())
    missing = [p for p in drawn if not (ROOT / p).exists()]
    assert missing == [], f"docs/design.md draws files that do not exist: {missing}"
    files = {str(p.relative_to(ROOT)) for p in package_modules().values()}
    undrawn = sorted(files - set(drawn))
    assert undrawn == [], f"package files missing from docs/design.md's tree: {undrawn}"


def test_guards_catch_what_they_guard(tmp_path):
    """The checks above on a tiny made-up package: a cycle, an upward import, a long file, an undrawn file."""
    pkg = tmp_path / PACKAGE
    for name, text in {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "from indoor_parsing.data import b\nimport indoor_parsing.methods.m\n",
        "data/b.py": "def f():\n    from . import a\n" + "x = 1\n" * MAX_LINES,
        "methods/__init__.py": "",
        "methods/m.py": "",
        "methods/n.py": "from indoor_parsing.data.b import f\n",
    }.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    modules = package_modules(tmp_path)
    graph = import_graph(modules)
    assert find_cycles(graph) == [["indoor_parsing.data.a", "indoor_parsing.data.b"]]
    assert find_cycles(folder_graph(graph)) == [["data", "methods"]]
    assert upward_imports(graph) == ["indoor_parsing.data.a -> indoor_parsing.methods.m"]
    assert long_files(modules, tmp_path) == [f"indoor_parsing/data/b.py: {MAX_LINES + 2} lines"]
    tree = "```text\nindoor_parsing/\n├── data/\n│   └── a.py    job\n└── methods/\n    └── m.py  job\n```\n"
    assert design_tree(tree) == [
        "indoor_parsing/data/",
        "indoor_parsing/data/a.py",
        "indoor_parsing/methods/",
        "indoor_parsing/methods/m.py",
    ]
