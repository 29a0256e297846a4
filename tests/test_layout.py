"""The package's plan, checked from its source: imports only point down the layers drawn in
docs/contributing.md, no two modules import each other (directly or round a loop), and no
function grows past the length a reader takes in at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ganrun

PACKAGE = Path(ganrun.__file__).parent

# Lower layers never import higher ones; a package may import its own modules and anything below.
LAYERS = ["errors", "config", "models", "data", "artifacts", "metrics", "training", "commands", "__main__"]
LONGEST_FUNCTION = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The ganrun modules a file imports, at its top or inside a function alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ganrun"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(n for n in names if n in known)
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ganrun"))
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(p, known) - {m} for m, p in mods.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the bare package holds only __version__
        return -1
    return LAYERS.index(parts[1])


def test_every_module_sits_in_a_layer():
    for m in modules():
        assert m == "ganrun" or m.split(".")[1] in LAYERS, f"{m} is in no layer: add it to docs/contributing.md and LAYERS"


def test_the_bare_package_imports_nothing_of_ganrun():
    assert graph()["ganrun"] == set()


def test_imports_only_point_down():
    upward = [
        f"{m} -> {t}"
        for m, targets in graph().items()
        for t in targets
        if m.split(".")[:2] != t.split(".")[:2] and layer(t) >= layer(m)
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_loop_and_passes_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_modules():
    # a package's __init__ re-exports its modules, and a module may import its package's names:
    # that pair is not a loop of the design, so edges into a package's own __init__ are left out
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph().items()}
    assert cycles(edges) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_function_is_longer_than_a_screen(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION
    ]
    assert not long, long
