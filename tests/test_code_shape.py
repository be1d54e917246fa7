"""The shape of the product code: no function or method longer than ``MAX_FUNCTION_LINES``.

A long function is a pipeline that wants naming: split it into steps, each a function with one
job (issue 36). Counted from the ``def`` line to the last line of the body, as ``ast`` gives them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgebert", "exporters", "quantize")
MAX_FUNCTION_LINES = 80


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name length`` of every function or method under ``PACKAGES`` longer than ``limit``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > limit:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} {length}")
    return found


def test_no_function_over_the_limit():
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n" + "\n".join(
        offenders
    )


def test_the_walk_finds_a_long_method(tmp_path):
    pkg = tmp_path / "edgebert"
    pkg.mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))  # the def line makes it 81
    (pkg / "long.py").write_text("class C:\n    def method(self):\n" + body)
    (pkg / "short.py").write_text("def f():\n    return 1\n")
    where = Path("edgebert") / "long.py"
    assert long_functions(tmp_path) == [f"{where}:2 method {MAX_FUNCTION_LINES + 1}"]
