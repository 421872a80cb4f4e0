"""No import cycles in `attnrec_tf/`: the import graph, built with `ast`, has none.

Every `import attnrec_tf.x` and `from attnrec_tf.x import y` (or relative) is an edge, at module
level and inside functions alike (a lazy import is still a dependency), except under
`if TYPE_CHECKING:`. `from attnrec_tf.pkg import name` points at `attnrec_tf.pkg.name` when
that file exists, else at `attnrec_tf.pkg`; a package's `__init__` is its own node
(`attnrec_tf.pkg`), so an `__init__` that imports a submodule which imports names from the
package (`from attnrec_tf.pkg import name`, `name` no submodule) is a cycle too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attnrec_tf"


def _module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside `if TYPE_CHECKING:` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for the package in folder `root`."""
    modules = {_module_name(root, f): f for f in sorted(root.rglob("*.py"))}
    top = root.name

    def resolve(name: str) -> str | None:
        """The longest existing module that `name` names (or starts with)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                wanted = [f"{base}.{alias.name}" for alias in node.names] or [base]
                wanted = [w if w in modules else base for w in wanted]
            for target in wanted:
                if target != top and not target.startswith(top + "."):
                    continue
                module = resolve(target)
                if module is not None and module != name:
                    targets.add(module)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of the graph as `[a, b, ..., a]`, sorted: for every strongly connected
    component (more than one module, or a module importing itself), a shortest cycle through
    each of its modules that no earlier cycle of it passes through."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        covered: set[str] = set()
        for start in component:
            if start not in covered:
                cycles.append(_a_cycle(graph, start, set(component)))
                covered.update(cycles[-1])
    return sorted(cycles)


def _a_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """A shortest cycle from `start` back to it inside `members` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(members)}")


def _show(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_attnrec_tf_has_no_import_cycle() -> None:
    cycles = find_cycles(import_graph(PACKAGE))
    print(_show(cycles))
    assert not cycles, f"import cycles in attnrec_tf/:\n{_show(cycles)}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_the_finder_finds_a_two_module_cycle_even_through_a_lazy_import(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "def helper():\n    from pkg import a\n    return a\n",
            "pkg/c.py": "import pkg.a\n",  # into the cycle, not part of it
        },
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.c"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert _show(find_cycles(graph)) == "pkg.a -> pkg.b -> pkg.a"


def test_type_checking_imports_are_no_edges_and_init_is_its_own_node(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub.x import thing\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/x.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.sub import y\n"
                "thing = 1\n"
            ),
            "pkg/sub/y.py": "import pkg\n",  # the package's __init__ imports sub.x, not y
        },
    )
    graph = import_graph(package)
    assert graph["pkg"] == {"pkg.sub.x"}
    assert graph["pkg.sub.x"] == set()
    assert find_cycles(graph) == []
    (package / "sub" / "x.py").write_text("from pkg import other\nthing = 1\n")  # a name of pkg
    assert find_cycles(import_graph(package)) == [["pkg", "pkg.sub.x", "pkg"]]


def test_the_package_never_imports_what_lives_beside_it() -> None:
    """`benchmarks/`, `web_demo/` and `tests/` import the package, never the reverse."""
    beside = {"benchmarks", "web_demo", "tests"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [node.module or ""] if node.level == 0 else []
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in beside]
    assert found == []
