"""The import structure: every module imports, no import circles, a light ``import quota``.

The graph is read from the source with ``ast``: every ``import`` statement of a module counts,
wherever it stands (inside a function or under ``TYPE_CHECKING`` too), so a lazy import cannot
hide a circle. An edge goes to the module named, or to the package whose ``__init__`` runs; the
implicit import of a parent package is not an edge (every module would then meet ``quota``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quota"


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _base(name: str, path: Path, level: int, target: str | None) -> str:
    """The absolute module a (possibly relative) import names."""
    if level == 0:
        return target or ""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for _ in range(level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{target}" if target else package


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package modules ``name`` imports."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, path, node.level, node.module)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                if child in known:
                    yield child
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_imports() -> None:
    edges = graph()
    assert "quota.limiter" in edges["quota"]  # the public names come from below
    assert edges["quota.errors"] == set()  # the bottom imports nothing of the package


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_a_circle_is_caught() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = sorted(n for n in modules() if not n.endswith("__main__"))
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    run = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_import_quota_stays_light() -> None:
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import quota"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    heavy = {m for m in loaded if m.split(".")[0] in ("matplotlib", "uvicorn")}
    assert not heavy
    assert not {m for m in loaded if m == "quota.cli" or m.startswith("quota.cli.")}


def long_functions(limit: int = 60) -> list[str]:
    """``file:function (lines)`` of every function of the package longer than ``limit``."""
    out = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    out.append(f"{name}:{node.name} ({lines})")
    return out


def test_functions_stay_under_60_lines() -> None:
    assert long_functions() == []
