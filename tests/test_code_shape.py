"""The shape the codebase keeps: short functions, and a module table that is the tree.

The table is in docs/design.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attnrec_tf"
DESIGN = PACKAGE.parent / "docs" / "design.md"
MAX_LINES = 80
"""Lines of a function's body, its docstring left out; a longer one says why (`# long: ...`)."""


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(body) > 1:
        if isinstance(first.value.value, str):
            first = body[1]
    return int(node.end_lineno or node.lineno) - first.lineno + 1


def long_functions(root: Path = PACKAGE, limit: int = MAX_LINES) -> list[str]:
    """`path:line name (N lines)` of every function over `limit` without a `# long:` reason."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            size = _body_lines(node)
            signature = "\n".join(lines[node.lineno - 1 : node.body[0].lineno - 1])
            if size > limit and "# long:" not in signature:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({size})")
    return found


def test_long_function_finder_counts_the_body_without_the_docstring(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(5))
    (tmp_path / "m.py").write_text(
        f'def short():\n    """Doc\n\n    more doc.\n    """\n{body}\n'
        f"def long():\n{body}{body}\n"
        f"def excused():  # long: a table of cases\n{body}{body}",
        encoding="utf-8",
    )
    assert long_functions(tmp_path, limit=6) == [f"{tmp_path.name}/m.py:12 long (10)"]


def test_no_function_is_longer_than_80_lines_without_a_reason() -> None:
    assert long_functions() == []


def _table_modules() -> set[str]:
    """The paths in docs/design.md's "each step in its own module" table, under `attnrec_tf/`.

    In a row's module cell, `` `folder/`: `a.py`, `b.py` `` names `folder/a.py` and `folder/b.py`.
    """
    text = DESIGN.read_text(encoding="utf-8")
    table = text.split("| step | module |", 1)[1].split("\n\n", 1)[0]
    named = set()
    for row in table.splitlines()[2:]:
        prefix = ""
        for match in re.finditer(r"`([\w/.]+(?:\.py|/))`(:?)", row.rsplit("|", 2)[-2]):
            path, colon = match.groups()
            if path.endswith("/") and colon:
                prefix = path
            named.add(path if "/" in path else prefix + path)
    return named


def test_design_module_table_names_every_module_and_only_existing_ones() -> None:
    named = _table_modules()
    missing_files = sorted(p for p in named if not (PACKAGE / p).exists())
    assert missing_files == [], "docs/design.md names modules that do not exist"
    covered = {p for p in named if p.endswith(".py")}
    folders = tuple(p for p in named if p.endswith("/"))
    modules = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("_")
    }
    unnamed = sorted(m for m in modules if m not in covered and not m.startswith(folders))
    assert unnamed == [], "docs/design.md's module table leaves these out"
